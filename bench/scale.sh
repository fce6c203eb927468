# bench/scale.sh (sourced by bench/run)
section_scale() { blog "scale: not written yet"; }
