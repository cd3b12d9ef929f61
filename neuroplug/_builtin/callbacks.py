"""Built-in plugin: the training callbacks that ship with neuroplug."""

from ..plugins import hookimpl


@hookimpl
def neuroplug_register_callbacks(register):
    """Register the built-in callbacks."""
    from ..callbacks import Checkpoint, CSVLogger, EarlyStopping, ReduceLROnPlateau

    register("checkpoint", Checkpoint)
    register("csv_logger", CSVLogger)
    register("early_stopping", EarlyStopping)
    register("reduce_lr_on_plateau", ReduceLROnPlateau)
