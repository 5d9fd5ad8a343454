// Package manifests holds the tests of what users install: the kustomize
// trees under config/ (rendered, least-privilege RBAC, applied to a real
// kube-apiserver, the deletion-protection policy enforced) and the
// Dockerfile's build step. It has no code of its own.
package manifests
