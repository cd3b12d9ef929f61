# Fused types shared by every kernel module of neuroplug_core.

ctypedef fused floating:
    float
    double
