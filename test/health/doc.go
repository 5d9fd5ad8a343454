// Package health tests what GitOps tools read as a Customer's health: kstatus
// (kpt, Flux without expressions), the Flux healthCheckExprs in
// config/flux and the Argo CD health check in config/argocd, over fixtures of
// every state the operator leaves a Customer in (testdata/).
package health
