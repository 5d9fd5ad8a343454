# ScriptLock Customer operator. `make demo` and `make test` are the two
# commands a fresh clone needs; everything they use is built on demand into
# bin/ from the Go module proxy.

IMG ?= scriptlock/customer-operator:latest
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# One variable holds the version for every binary: the manager's --version,
# its start-up log line and User-Agent, and `kubectl scriptlock version`.
VERSION_VAR := github.com/scriptlock/customer-operator/internal/version.Version
LDFLAGS := -X $(VERSION_VAR)=$(VERSION)

LOCALBIN := $(CURDIR)/bin
CONTROLLER_GEN := $(LOCALBIN)/controller-gen
KUSTOMIZE := $(LOCALBIN)/kustomize
GOLANGCI_LINT := $(LOCALBIN)/golangci-lint
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.7.1
GOLANGCI_LINT_VERSION ?= v2.15.0

# The control plane for envtest and the demo. A KUBEBUILDER_ASSETS you set
# is used as it is. Otherwise setup-envtest is tried first (it downloads the
# release binaries where it can reach them); where it cannot, kube-apiserver
# and etcd are built from source (hack/kubernetes). Either way they end up
# in bin/k8s.
#
# hack/kubernetes is the one module that builds Kubernetes binaries: these
# two, and the e2e node's (hack/e2e/e2e.mk). Its go.mod names the version.
K8S_MODULE := hack/kubernetes
K8S_VERSION := $(shell awk '$$1 == "k8s.io/kubernetes" { print $$2; exit }' $(K8S_MODULE)/go.mod)
K8S_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=$(patsubst v%,%,$(word 1,$(subst ., ,$(K8S_VERSION)))) \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(K8S_VERSION)))
K8S_BIN := $(LOCALBIN)/k8s
KUBEBUILDER_ASSETS ?= $(K8S_BIN)
export KUBEBUILDER_ASSETS
SETUP_ENVTEST := $(LOCALBIN)/setup-envtest
SETUP_ENVTEST_VERSION ?= v0.25.1
ENVTEST_K8S_VERSION ?= 1.34.x

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and RBAC manifests (and the embedded copies of the CRD: the plugin's, the manager's start-up check's).
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	go generate ./cmd/kubectl-scriptlock ./internal/crdcheck

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: verify-generated
verify-generated: manifests generate ## Fail if generated files are stale.
	@git diff --exit-code -- config/crd config/rbac api cmd/kubectl-scriptlock/customer_crd.yaml internal/crdcheck/customer_crd.yaml || { echo "generated files are stale: run 'make manifests generate' and commit"; exit 1; }

.PHONY: controlplane
controlplane: ## kube-apiserver and etcd for envtest: KUBEBUILDER_ASSETS if set, else setup-envtest, else built from source (once; cached in bin/k8s).
	@if [ -x "$(KUBEBUILDER_ASSETS)/kube-apiserver" ] && [ -x "$(KUBEBUILDER_ASSETS)/etcd" ]; then exit 0; fi; \
	if [ "$(KUBEBUILDER_ASSETS)" != "$(K8S_BIN)" ]; then echo "KUBEBUILDER_ASSETS=$(KUBEBUILDER_ASSETS) has no kube-apiserver and etcd"; exit 1; fi; \
	$(MAKE) --no-print-directory envtest-download || \
	{ echo ">> setup-envtest could not download the binaries here; building them from source"; \
	  $(MAKE) --no-print-directory $(K8S_BIN)/kube-apiserver $(K8S_BIN)/etcd; }

.PHONY: envtest-download
envtest-download: ## Fetch kube-apiserver and etcd with setup-envtest into bin/k8s (needs their download site).
	@mkdir -p $(K8S_BIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-runtime/tools/setup-envtest@$(SETUP_ENVTEST_VERSION)
	@dir=$$(timeout 300 $(SETUP_ENVTEST) use $(ENVTEST_K8S_VERSION) --bin-dir $(LOCALBIN)/envtest -p path) && \
	  ln -sf "$$dir/kube-apiserver" "$$dir/etcd" $(K8S_BIN)/

$(K8S_BIN)/etcd: $(K8S_MODULE)/go.mod
	@mkdir -p $(K8S_BIN)
	@echo ">> building etcd from the Go module proxy (first time only, about 2 minutes)"
	cd $(K8S_MODULE) && go build -o $@ ./etcd

$(K8S_BIN)/kube-apiserver: $(K8S_MODULE)/go.mod
	@mkdir -p $(K8S_BIN)
	@echo ">> building kube-apiserver $(K8S_VERSION) from the Go module proxy (first time only, about 15 minutes on 2 cores)"
	cd $(K8S_MODULE) && go build -ldflags "$(K8S_LDFLAGS)" -o $@ ./kube-apiserver

.PHONY: test
test: manifests generate controlplane $(KUSTOMIZE) ## Run every test: unit, fuzz seeds and the integration suites on a real kube-apiserver + etcd, and the Helm chart's.
	go test ./... -count=1 -timeout 30m -parallel 8
	cd hack/helmchart && go test ./... -count=1

.PHONY: test-loaded
test-loaded: ## make test RUNS times (default 3) in a row while stress-ng keeps every core busy (installs stress-ng with apt if missing).
	hack/test-loaded.sh

.PHONY: explore
explore: controlplane ## The fault explorer (docs/explorer.md): EXPLORE_SEEDS histories (default 30), or EXPLORE_SEED=n to replay one; failures are shrunk, EXPLORE_SAVE=name keeps one as a regression test.
	EXPLORE_SEEDS=$(or $(EXPLORE_SEEDS),30) EXPLORE_SEED=$(EXPLORE_SEED) EXPLORE_FROM=$(EXPLORE_FROM) \
	EXPLORE_SHRINK=$(or $(EXPLORE_SHRINK),30) EXPLORE_SAVE=$(EXPLORE_SAVE) EXPLORE_HISTORY=$(abspath $(EXPLORE_HISTORY)) \
	EXPLORE_REPORT=$(EXPLORE_REPORT) EXPLORE_PARALLEL=$(or $(EXPLORE_PARALLEL),3) EXPLORE_LOG=$(if $(EXPLORE_LOG),$(abspath $(EXPLORE_LOG))) \
	go test ./test/explorer -run '^TestExplore$$' -count=1 -v -timeout 0

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 60s).
	hack/fuzz.sh $(or $(FUZZTIME),60s)

.PHONY: demo
demo: controlplane ## Local control plane + simulator + operator + samples, end to end (DEMO_EXIT=1 exits after printing).
	go run ./hack/demo

.PHONY: bench
bench: controlplane build ## Scale benchmark (test/bench, its own module): writes docs/benchmarks.md, docs/benchmarks.json and the charts beside them.
	cd test/bench && go run . -root $(CURDIR) -skip-build $(BENCH_ARGS)

##@ Build

.PHONY: build
build: ## Build the manager, the kubectl plugin and the simulator into bin/.
	go generate ./cmd/kubectl-scriptlock
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/manager .
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/kubectl-scriptlock ./cmd/kubectl-scriptlock
	CGO_ENABLED=0 go build -trimpath -o bin/scriptlock-sim ./cmd/scriptlock-sim

# The kubectl plugin for every platform krew serves: one archive per OS/arch
# with the binary and the LICENSE, and the krew manifest filled in from
# hack/krew/scriptlock.yaml (hack/krew/fill.sh fails unless it names every
# archive built and nothing else).
PLUGIN_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
PLUGIN_DIST ?= dist/plugin

.PHONY: plugin-archives
plugin-archives: ## Build dist/plugin/kubectl-scriptlock_<os>_<arch>.tar.gz for linux/darwin/windows x amd64/arm64, and dist/plugin/scriptlock.yaml for krew.
	go generate ./cmd/kubectl-scriptlock
	@rm -rf $(PLUGIN_DIST) && mkdir -p $(PLUGIN_DIST)
	@set -e; for p in $(PLUGIN_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		work=$(PLUGIN_DIST)/kubectl-scriptlock_$${os}_$${arch}; mkdir -p $$work; \
		echo ">> $$os/$$arch"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch go build -trimpath -ldflags "$(LDFLAGS)" -o $$work/kubectl-scriptlock$$ext ./cmd/kubectl-scriptlock; \
		cp LICENSE $$work/; \
		tar -C $$work -czf $$work.tar.gz --owner=0 --group=0 --numeric-owner kubectl-scriptlock$$ext LICENSE; \
		rm -rf $$work; \
	done
	hack/krew/fill.sh $(VERSION) $(PLUGIN_DIST)

# Metrics in plain HTTP on loopback (--metrics-secure=false): a local run
# has no Prometheus with a ServiceAccount token to scrape it. RUN_ARGS come
# last and override these.
.PHONY: run
run: manifests generate ## Run the manager against the cluster of your kubeconfig.
	go run -ldflags "$(LDFLAGS)" . --metrics-secure=false --metrics-bind-address=127.0.0.1:8080 $(RUN_ARGS)

.PHONY: docker-build
docker-build: ## Build the image.
	docker build --build-arg VERSION=$(VERSION) -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the image.
	docker push $(IMG)

# Multi-arch image, as kubebuilder scaffolds it: the Dockerfile's builder
# stage runs on the build machine and cross-compiles for each TARGETARCH
# (test/manifests proves its build line for every platform below).
PLATFORMS ?= linux/amd64,linux/arm64
.PHONY: docker-buildx
docker-buildx: ## Build and push the image for PLATFORMS with docker buildx.
	- docker buildx create --name scriptlock-builder
	docker buildx use scriptlock-builder
	docker buildx build --push --platform=$(PLATFORMS) --build-arg VERSION=$(VERSION) --tag $(IMG) .
	- docker buildx rm scriptlock-builder

##@ Deployment

.PHONY: install
install: manifests $(KUSTOMIZE) ## Install the CRD into the cluster of your kubeconfig.
	$(KUSTOMIZE) build config/crd | kubectl apply -f -

.PHONY: uninstall
uninstall: manifests $(KUSTOMIZE) ## Remove the CRD (deletes every Customer: see README, Uninstall).
	$(KUSTOMIZE) build config/crd | kubectl delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests $(KUSTOMIZE) ## Deploy the operator with image IMG.
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/default | kubectl apply -f -

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Remove the operator.
	$(KUSTOMIZE) build config/undeploy | kubectl delete --ignore-not-found -f -

# Namespace-scoped mode (docs/operations.md, "Namespace-scoped mode"): a
# cluster admin installs the shared, cluster-scoped parts once, then each
# team deploys and removes its own operator, which carries nothing
# cluster-scoped. There is deliberately no target that deletes
# config/cluster: that deletes every Customer of every team (read the docs).
.PHONY: install-cluster
install-cluster: manifests $(KUSTOMIZE) ## Cluster admin, once: the CRD and the deletion-protection policy (config/cluster).
	$(KUSTOMIZE) build config/cluster | kubectl apply -f -

.PHONY: deploy-namespaced
deploy-namespaced: manifests $(KUSTOMIZE) ## Deploy a namespace-scoped operator (config/namespaced) with image IMG; needs install-cluster first.
	@kubectl get --raw /apis/licensing.scriptlock.com >/dev/null 2>&1 || { \
		echo "The Customer API is not installed in this cluster: a cluster admin must run 'make install-cluster' (kubectl apply -k config/cluster) first."; exit 1; }
	cd config/manager && $(KUSTOMIZE) edit set image controller=$(IMG)
	$(KUSTOMIZE) build config/namespaced | kubectl apply -f -

.PHONY: undeploy-namespaced
undeploy-namespaced: $(KUSTOMIZE) ## Remove the namespace-scoped operator only: the CRD, the policy and every Customer stay.
	$(KUSTOMIZE) build config/namespaced | kubectl delete --ignore-not-found -f -

##@ Release

# dist/crds.yaml and dist/install.yaml are release artifacts, built for the
# release's image and attached to the release; they are not checked in
# (.gitignore). dist/chart is
# generated from config/ and checked in: `make verify-chart` fails when it
# is stale.
CHART_DIR := dist/chart
CHART_VERSION ?= 0.1.0
# The checked-in chart's appVersion, the default tag of its image: the
# release it belongs to (make release-dry-run packages it with the tag).
CHART_APP_VERSION ?= v$(CHART_VERSION)
# JSON schemas of the CRD for kubeconform and yaml-language-server
# (<group>/<kind>_<version>.json), generated and checked in with the chart.
SCHEMA_DIR := dist/schemas

.PHONY: build-installer
build-installer: manifests generate $(KUSTOMIZE) ## Write dist/crds.yaml (the CRD) and dist/install.yaml (the rest of config/default, image IMG), for `kubectl apply -f` (config/manager is left unchanged).
	KUSTOMIZE=$(KUSTOMIZE) hack/build-installer.sh "$(IMG)" dist/install.yaml

.PHONY: helm-chart
helm-chart: manifests ## Generate the Helm chart dist/chart and the CRD's JSON schemas dist/schemas from config/ (hack/helmchart); commit the result.
	cd hack/helmchart && go run . -config ../../config -out ../../$(CHART_DIR) -version $(CHART_VERSION) -app-version $(CHART_APP_VERSION) -schemas ../../$(SCHEMA_DIR)

.PHONY: verify-chart
verify-chart: helm-chart ## Fail if the checked-in dist/chart or dist/schemas is not what config/ generates.
	@git diff --exit-code -- $(CHART_DIR) $(SCHEMA_DIR) && test -z "$$(git status --porcelain -- $(CHART_DIR) $(SCHEMA_DIR))" || { \
		echo "dist/chart or dist/schemas is stale: run 'make helm-chart' and commit it"; git status --short -- $(CHART_DIR) $(SCHEMA_DIR); exit 1; }

# `make release-dry-run`: every artifact of a release into dist/release
# (hack/release/dry-run.sh), then the tests that check them; no network but
# the Go module proxy. A tag's release workflow (.github/workflows/release.yml)
# runs the same, then pushes and signs. Untagged, the version is
# v0.0.0-<git describe>, so that the chart and the krew manifest stay valid
# SemVer.
RELEASE_DIR := dist/release
RELEASE_IMAGE ?= ghcr.io/scriptlock/customer-operator
RELEASE_VERSION ?= $(shell v='$(VERSION)'; if echo "$$v" | grep -Eq '^v[0-9]+\.[0-9]+\.[0-9]+'; then echo "$$v"; else echo "v0.0.0-$$v" | tr -c 'A-Za-z0-9.\n-' '-'; fi)
CYCLONEDX_GOMOD := $(LOCALBIN)/cyclonedx-gomod
CYCLONEDX_GOMOD_VERSION ?= v1.10.0

.PHONY: release-dry-run
release-dry-run: manifests generate controlplane $(KUSTOMIZE) $(CYCLONEDX_GOMOD) ## Build every release artifact into dist/release (image for amd64+arm64 without Docker, install.yaml, crds.yaml, chart, plugin + krew, SBOMs, checksums) and test them.
	VERSION=$(RELEASE_VERSION) IMAGE=$(RELEASE_IMAGE) OUT=$(RELEASE_DIR) KUSTOMIZE=$(KUSTOMIZE) CYCLONEDX_GOMOD=$(CYCLONEDX_GOMOD) hack/release/dry-run.sh
	RELEASE_DIR=$(abspath $(RELEASE_DIR)) RELEASE_VERSION=$(RELEASE_VERSION) RELEASE_IMAGE=$(RELEASE_IMAGE) go test ./test/manifests -run '^TestRelease' -count=1 -v
	cd hack/helmchart && RELEASE_DIR=$(abspath $(RELEASE_DIR)) RELEASE_VERSION=$(RELEASE_VERSION) go test -run '^TestRelease' -count=1 -v .

CRD_REF_DOCS := $(LOCALBIN)/crd-ref-docs
CRD_REF_DOCS_VERSION ?= v0.3.0

.PHONY: api-docs
api-docs: $(CRD_REF_DOCS) ## Write docs/api-reference.md from the Go types in api/v1alpha1 (crd-ref-docs); commit it.
	$(CRD_REF_DOCS) --source-path=./api/v1alpha1 --config=docs/api/crd-ref-docs.yaml --renderer=markdown --output-path=docs/api-reference.md --log-level=WARN

.PHONY: verify-api-docs
verify-api-docs: api-docs ## Fail if docs/api-reference.md is not what the Go types generate.
	@git diff --exit-code -- docs/api-reference.md || { echo "docs/api-reference.md is stale: run 'make api-docs' and commit it"; exit 1; }

ACTIONLINT := $(LOCALBIN)/actionlint
ACTIONLINT_VERSION ?= v1.7.12

.PHONY: lint-workflows
lint-workflows: $(ACTIONLINT) ## Check .github/workflows with actionlint.
	$(ACTIONLINT)

.PHONY: release-version
release-version: ## Print the version make release-dry-run stamps (VERSION, or v0.0.0-VERSION when it is no SemVer tag).
	@echo $(RELEASE_VERSION)

##@ Tools

$(CRD_REF_DOCS):
	GOBIN=$(LOCALBIN) go install github.com/elastic/crd-ref-docs@$(CRD_REF_DOCS_VERSION)

$(ACTIONLINT):
	GOBIN=$(LOCALBIN) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

$(CYCLONEDX_GOMOD):
	GOBIN=$(LOCALBIN) go install github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$(CYCLONEDX_GOMOD_VERSION)

$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

$(KUSTOMIZE):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Supply chain

KUBE_SCORE := $(LOCALBIN)/kube-score
KUBECTL_VALIDATE := $(LOCALBIN)/kubectl-validate
GOVULNCHECK := $(LOCALBIN)/govulncheck
KUBE_SCORE_VERSION ?= v1.20.0
KUBECTL_VALIDATE_VERSION ?= v0.0.4
GOVULNCHECK_VERSION ?= v1.9.0

.PHONY: check-manifests
check-manifests: $(KUSTOMIZE) $(KUBE_SCORE) $(KUBECTL_VALIDATE) ## Render config/ and check it offline with kube-score and kubectl-validate.
	KUSTOMIZE=$(KUSTOMIZE) KUBE_SCORE=$(KUBE_SCORE) KUBECTL_VALIDATE=$(KUBECTL_VALIDATE) hack/check-manifests.sh

.PHONY: vulncheck
vulncheck: $(GOVULNCHECK) ## Look for known vulnerabilities in the code's call graph (needs the vulnerability database online; not part of CI).
	$(GOVULNCHECK) ./...

$(KUBE_SCORE):
	GOBIN=$(LOCALBIN) go install github.com/zegl/kube-score/cmd/kube-score@$(KUBE_SCORE_VERSION)

$(KUBECTL_VALIDATE):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kubectl-validate@$(KUBECTL_VALIDATE_VERSION)

$(GOVULNCHECK):
	GOBIN=$(LOCALBIN) go install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

##@ End to end

# `make e2e` and its helpers live in hack/e2e (a real single-node cluster:
# kubelet, containerd and runc on this machine).
-include hack/e2e/e2e.mk
