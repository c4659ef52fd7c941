# The kretry CLI in a container: `kretry relay` for a standalone relay, and
# every other command (topics apply, dlq ...) for jobs.
#
#   docker build -t kretry .
#   docker run --rm kretry version
#
# The binary is static (CGO_ENABLED=0) and the final image is distroless
# static: no shell, no package manager, no libc, running as the non-root
# user 65532. Without a shell there is no Docker HEALTHCHECK: under
# Kubernetes the probes are HTTP (/healthz and /readyz on the --metrics
# address), see deploy/k8s/relay.yaml. deploy/deploy_test.go builds the
# binary with the exact flags of the build stage below and checks it.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/kretry ./cmd/kretry

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kretry /usr/local/bin/kretry
# nonroot of distroless, by number so that Kubernetes' runAsNonRoot can
# check it without reading /etc/passwd.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kretry"]
CMD ["--help"]
