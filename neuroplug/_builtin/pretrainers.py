"""Built-in plugin: the pretrainers that ship with neuroplug."""

from ..plugins import hookimpl


@hookimpl
def neuroplug_register_pretrainers(register):
    """Register the built-in pretrainers."""
    from ..pretrain.sbn import SBNPretrainer

    register("sbn", SBNPretrainer)

    from ..pretrain.cdbn import CDBNPretrainer

    register("cdbn", CDBNPretrainer)

    from ..pretrain.dbn import DBNPretrainer

    register("dbn", DBNPretrainer)
