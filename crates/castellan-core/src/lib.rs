//! Pure model and planner for castellan: desired/actual state, normalisation, plan (no I/O).
