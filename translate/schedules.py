"""Learning-rate schedules.

``InverseSqrt`` is the schedule of the Transformer (Vaswani et al. 2017,
"Attention Is All You Need", sec. 5.3), written with the peak learning rate as
its parameter instead of ``d_model ** -0.5``: a linear warm-up from 0 to
``learning_rate`` over ``warmup_steps`` steps, then a decay proportional to
the inverse square root of the step number.
"""

from __future__ import annotations

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
