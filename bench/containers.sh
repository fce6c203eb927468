# bench/containers.sh — section 6, containers (sourced by bench/run).
#
# TODO(issue #6): podman and docker cold start through ondemand vs the runtime's own
# start-to-socket time. This section runs only once the container units are part of the project
# (units/ondemand-podman@.service and units/ondemand-docker@.service committed, with the local
# image from scripts/image/build); until then it says SKIPPED and why. Planned measurement, as in
# section 2: per run, request -> StartUnit + socket accepts -> answer for a podman app through
# ondemand, alongside `podman run` of the same image timed until its socket accepts
# (bench/tools/startprobe on the same unit).

section_containers() {
  local u missing=()
  for u in units/ondemand-podman@.service units/ondemand-docker@.service; do
    git -C "$TOP" ls-files --error-unmatch "$u" >/dev/null 2>&1 || missing+=("$u")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    blog "containers: SKIPPED (issue #6): not committed yet: ${missing[*]}"
    emit containers "\"skipped\":\"container units not committed yet: ${missing[*]}\""
    return 0
  fi
  blog "containers: SKIPPED: the container units exist, but this benchmark is not written yet (TODO issue #6)"
  emit containers '"skipped":"container units exist; the benchmark is not written yet (TODO issue #6)"'
}
