// Package deploy holds no code: its tests check the repository's Dockerfile
// and the Kubernetes manifests in deploy/k8s against the kretry binary.
// They build the binary with the Dockerfile's exact flags and check that it
// is static and runs as the image's non-root user, that the manifests
// parse and probe the paths and the port the relay serves, and run the
// relay's container command as the manifest gives it until its probes pass. The image itself
// is not built here: that needs a container engine.
package deploy
