# bench/cold.sh (sourced by bench/run)
section_cold() { blog "cold: not written yet"; }
