"""scikit-learn estimators: the front door of neuroplug."""

__all__: list[str] = []
