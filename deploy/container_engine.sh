# Sourced by build_docker.sh, run_docker.sh and run_docker_cloud.sh: find a working container engine.
# Sets $engine, or exits with a message that says what to install or start.
engine="${CONTAINER_ENGINE:-docker}"
if ! command -v "$engine" >/dev/null 2>&1; then
    echo "error: '$engine' is not installed: install Docker, or set CONTAINER_ENGINE=podman" >&2
    exit 127
fi
if ! "$engine" info >/dev/null 2>&1; then
    echo "error: '$engine' is installed but its daemon does not answer: start Docker (or use CONTAINER_ENGINE=podman)" >&2
    exit 1
fi
