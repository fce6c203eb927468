# bench/lifecycle.sh (sourced by bench/run)
section_lifecycle() { blog "lifecycle: not written yet"; }
