//! pvesim library.
