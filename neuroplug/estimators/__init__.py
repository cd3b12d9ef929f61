"""scikit-learn estimators: the front door of neuroplug."""

from .cnn import CNNClassifier, CNNRegressor
from .crbm import ConvDBN, ConvRBM
from .dbn import DBN, DBNClassifier
from .rbm import RBM
from .sbn import SigmoidBeliefNet

__all__: list[str] = [
    "CNNClassifier",
    "CNNRegressor",
    "SigmoidBeliefNet",
    "ConvDBN",
    "ConvRBM",
    "RBM",
    "DBN",
    "DBNClassifier",
]
