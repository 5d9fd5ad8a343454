# `make e2e`: the shipped operator in a real Pod on a real single-node
# cluster on this machine (hack/e2e/README.md says how and why). Included by
# the root Makefile. Needs root, as containerd and the kubelet do.

E2E_DIR := hack/e2e
# Node binaries are built from hack/kubernetes (the root Makefile's
# K8S_MODULE, K8S_VERSION and K8S_LDFLAGS), once per its go.mod+go.sum, and
# kept in E2E_CACHE; point it at a folder outside the clone to share them between
# clones (a fresh clone then skips their build).
E2E_CACHE ?= $(LOCALBIN)/e2e
# The node's work folder: its files, sockets and mounts. node-down.sh
# removes it.
E2E_WORK ?= /tmp/scriptlock-e2e
# The managers' logs and the simulator's, kept after the run.
E2E_ARTIFACTS ?= $(LOCALBIN)/e2e-artifacts
E2E_TEST_ARGS ?=

E2E_NODE_KEY := $(shell cat $(K8S_MODULE)/go.mod $(K8S_MODULE)/go.sum | sha256sum | cut -c1-12)
E2E_NODE_BIN := $(abspath $(E2E_CACHE))/node-$(K8S_VERSION)-$(E2E_NODE_KEY)
E2E_NODE_CMDS := etcd kube-apiserver kube-controller-manager kube-scheduler kubelet
# pause and imagetar: small, rebuilt (from the Go build cache) every run.
E2E_TOOLS := $(LOCALBIN)/e2e-tools
# The operator's image, as config/e2e names it.
E2E_IMAGE := scriptlock/customer-operator:e2e
E2E_IMAGE_TAR := $(E2E_TOOLS)/customer-operator-e2e.tar
# containerd (1.6 in Debian 12) and runc run the Pods; the CNI plugins give
# the node its loopback network; openssl makes its certificates.
E2E_APT_PACKAGES := containerd runc containernetworking-plugins openssl curl
E2E_ENV := E2E_WORK=$(E2E_WORK) E2E_NODE_BIN=$(E2E_NODE_BIN) E2E_TOOLS=$(E2E_TOOLS) E2E_IMAGES=$(E2E_IMAGE_TAR)

.PHONY: e2e
e2e: e2e-deps e2e-node-binaries e2e-image ## The shipped image and config/default (through config/e2e) on a real single-node cluster on this machine, torn down after; needs root. About 2 min, plus 6-17 min the first time (node binaries, built once).
	@$(E2E_ENV) E2E_ARTIFACTS=$(abspath $(E2E_ARTIFACTS)) E2E_TEST_ARGS="$(E2E_TEST_ARGS)" $(E2E_DIR)/run.sh

.PHONY: e2e-up
e2e-up: e2e-deps e2e-node-binaries e2e-image ## Bring the e2e node up and leave it running (kubeconfig in E2E_WORK); `make e2e-down` removes it.
	@$(E2E_ENV) $(E2E_DIR)/node-up.sh

.PHONY: e2e-down
e2e-down: ## Tear the e2e node down: no process, mount, cgroup or file left.
	@$(E2E_ENV) $(E2E_DIR)/node-down.sh

.PHONY: e2e-deps
e2e-deps: ## Install containerd, runc and the CNI plugins for the e2e node (apt-get, once).
	@missing=$$(for p in $(E2E_APT_PACKAGES); do dpkg-query -W -f '$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo ">> installing" $$missing "(apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

.PHONY: e2e-node-binaries
e2e-node-binaries: ## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubelet for the e2e node (once; cached in E2E_CACHE).
	@for c in $(E2E_NODE_CMDS); do [ -x $(E2E_NODE_BIN)/$$c ] || missing=1; done; [ -z "$$missing" ] && exit 0; \
	echo ">> building the e2e node binaries $(K8S_VERSION) from the Go module proxy into $(E2E_NODE_BIN) (first time only: 6 minutes on 2 idle cores, up to 17 on busy ones)"; \
	set -e; rm -rf $(E2E_NODE_BIN).tmp; mkdir -p $(E2E_NODE_BIN).tmp; \
	cd $(K8S_MODULE) && for c in $(E2E_NODE_CMDS); do \
		echo ">> $$c"; go build -ldflags "$(K8S_LDFLAGS)" -o $(E2E_NODE_BIN).tmp/$$c ./$$c; \
	done; \
	rm -rf $(E2E_NODE_BIN) && mv $(E2E_NODE_BIN).tmp $(E2E_NODE_BIN)

.PHONY: e2e-image
e2e-image: ## Build the operator's image as a docker-archive tar from the Dockerfile, without Docker (hack/e2e/cmd/imagetar), and the node's pause program.
	@mkdir -p $(E2E_TOOLS)
	CGO_ENABLED=0 go build -o $(E2E_TOOLS)/imagetar ./$(E2E_DIR)/cmd/imagetar
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o $(E2E_TOOLS)/pause ./$(E2E_DIR)/cmd/pause
	$(E2E_TOOLS)/imagetar -dockerfile $(CURDIR)/Dockerfile -version $(VERSION) -tag $(E2E_IMAGE) -out $(E2E_IMAGE_TAR)
