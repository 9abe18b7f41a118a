"""Learning-rate schedules.

``InverseSqrt`` is the schedule of the Transformer (Vaswani et al. 2017,
"Attention Is All You Need", sec. 5.3), written with the peak learning rate as
its parameter instead of ``d_model ** -0.5``: a linear warm-up from 0 to
``learning_rate`` over ``warmup_steps`` steps, then a decay proportional to
the inverse square root of the step number.

``BudgetLinear`` is a schedule of the time budget rather than of the step:
the rate falls linearly from ``learning_rate`` at the start of training to
``min_learning_rate`` when ``train.max_minutes`` is spent, the "linear"
budget-aware schedule of Li, Yumer and Ramanan 2020 ("Budgeted Training:
Rethinking Deep Neural Network Training Under Resource Constraints", ICLR),
which anneals by the end of any budget, where a plateau schedule anneals
whenever dev loss stalls, early or not at all.
"""

from __future__ import annotations

import time

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="translate")
class InverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
    """``lr(step) = learning_rate * min(step / warmup_steps, sqrt(warmup_steps / step))``.

    ``step`` counts from 1 (the optimizer passes its iteration count, which
    starts at 0, so the first update uses ``learning_rate / warmup_steps``
    rather than 0). The two pieces meet at ``step == warmup_steps``, where the
    rate is ``learning_rate``; at ``4 * warmup_steps`` it is half of that.
    """

    def __init__(self, learning_rate: float, warmup_steps: int):
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if warmup_steps < 1:
            raise ValueError(f"warmup_steps must be at least 1, got {warmup_steps}")
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        warmup = float(self.warmup_steps)
        return self.learning_rate * ops.minimum(step / warmup, ops.sqrt(warmup / step))

    def get_config(self):
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps}


class BudgetLinear(keras.callbacks.Callback):
    """``lr = max(min_learning_rate, learning_rate * (1 - spent / budget))``, set before every batch.

    ``spent`` is wall-clock seconds since training began, dev evaluation
    included, as :class:`translate.callbacks.TimeBudget` counts them, so the
    rate reaches ``min_learning_rate`` as the budget stops training. The time
    up to the end of the last finished epoch is the attribute ``spent``,
    which :class:`translate.callbacks.ResumableBackup` saves with each backup:
    a resumed run goes on down the same line from where its backup left it
    (and, as ``TimeBudget`` gives a resumed run the whole budget again, ends
    its extra time at ``min_learning_rate``). Depending on the clock, a rerun
    with the same seed does not reproduce the rates, nor the weights, exactly.
    """

    def __init__(self, learning_rate: float, min_learning_rate: float, max_minutes: float):
        super().__init__()
        if learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {learning_rate}")
        if not 0 <= min_learning_rate <= learning_rate:
            raise ValueError(f"min_learning_rate must be in [0, learning_rate], got {min_learning_rate}")
        if max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive, got {max_minutes}")
        self.learning_rate = float(learning_rate)
        self.min_learning_rate = float(min_learning_rate)
        self.budget = 60.0 * max_minutes
        self.spent = 0.0
        self._since = 0.0

    def rate(self, spent: float) -> float:
        """The learning rate after ``spent`` seconds of the budget."""
        return max(self.min_learning_rate, self.learning_rate * (1.0 - spent / self.budget))

    def on_train_begin(self, logs=None):
        # A resumed run's spent time is set again after this (ResumableBackup comes last).
        self.spent = 0.0
        self._since = time.monotonic()

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.rate(self.spent + time.monotonic() - self._since)

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self.spent += now - self._since
        self._since = now
