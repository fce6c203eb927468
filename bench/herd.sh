# bench/herd.sh (sourced by bench/run)
section_herd() { blog "herd: not written yet"; }
