//! promptgate-core's tests through its public API, compiled into one binary: the gate's
//! decision and calibration, the statistics against SciPy and statsmodels reference values,
//! and every check type.

mod checks;
mod gate;
mod stats_reference;
