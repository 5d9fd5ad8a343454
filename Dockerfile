# The manager image: built from source in a Go toolchain image, shipped on
# distroless static (no shell, no package manager), running as non-root.
# test/manifests/dockerfile_test.go runs this file's COPY and `go build`
# steps without Docker, so keep the build one RUN line.

# Multi-arch: `make docker-buildx` builds linux/amd64 and linux/arm64; the
# builder runs on the build machine's own platform and cross-compiles.
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /workspace

# Dependencies first: this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

COPY main.go main.go
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/

RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-X github.com/scriptlock/customer-operator/internal/version.Version=${VERSION}" -o manager .

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
