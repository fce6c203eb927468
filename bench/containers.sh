# bench/containers.sh (sourced by bench/run)
section_containers() { blog "containers: not written yet"; }
