"""translate: recurrent neural machine translation with attention, in Keras.

    from translate import load
    translator = load("saved_models/translator")
    translator(["In the beginning was the Word."])

TensorFlow is imported only when a name below is first used, so
``python -m translate --help`` answers at once.
"""

__all__ = ["load", "Translator"]


def __getattr__(name):
    if name in __all__:
        from translate import translator

        return getattr(translator, name)
    raise AttributeError(f"module 'translate' has no attribute {name!r}")
