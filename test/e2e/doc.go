// Package e2e proves the shipped operator on a real node: the image built
// from the Dockerfile, config/default through the small overlay config/e2e,
// in a real Pod of a real kubelet with containerd and runc (hack/e2e brings
// that node up on this machine). Its test is behind the build tag e2e, so
// that `go test ./...` does not run it; `make e2e` does:
//
//	make e2e
//
// or, against a node that `make e2e-up` left running,
//
//	E2E_KUBECONFIG=/tmp/scriptlock-e2e/kubeconfig go test -tags e2e ./test/e2e -v -count=1
package e2e
