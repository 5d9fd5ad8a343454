package manifests

// The artifacts of `make release-dry-run` (hack/release/dry-run.sh) in
// RELEASE_DIR, for RELEASE_VERSION and RELEASE_IMAGE: skipped unless the
// Makefile sets them, since building them takes minutes.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/scriptlock/customer-operator/hack/localenv"
)

type release struct {
	dir, version, image string
}

func releaseArtifacts(t *testing.T) release {
	t.Helper()
	r := release{os.Getenv("RELEASE_DIR"), os.Getenv("RELEASE_VERSION"), os.Getenv("RELEASE_IMAGE")}
	if r.dir == "" || r.version == "" || r.image == "" {
		t.Skip("RELEASE_DIR, RELEASE_VERSION and RELEASE_IMAGE are unset: `make release-dry-run` builds the artifacts and runs this")
	}
	return r
}

func (r release) read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// semver is the version krew and Helm accept: v, then SemVer 2.0.
var semver = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

// TestReleaseVersionIsSemVerTaggedOrNot: the version of a release is the
// tag; an untagged build's is v0.0.0-<git describe>, still SemVer.
func TestReleaseVersionIsSemVerTaggedOrNot(t *testing.T) {
	r := releaseArtifacts(t)
	if !semver.MatchString(r.version) {
		t.Errorf("RELEASE_VERSION %q is not SemVer", r.version)
	}
	for in, want := range map[string]string{"v1.2.3": "v1.2.3", "c05da1c": "v0.0.0-c05da1c", "c05da1c-dirty": "v0.0.0-c05da1c-dirty", "v1.2.3-4-gabcdef0": "v1.2.3-4-gabcdef0"} {
		cmd := exec.CommandContext(t.Context(), "make", "-s", "--no-print-directory", "release-version", "VERSION="+in)
		cmd.Dir = repoRoot(t)
		cmd.Env = localenv.WithoutEnv(os.Environ(), "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "RELEASE_VERSION")
		out, err := cmd.Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != want || !semver.MatchString(got) {
			t.Errorf("VERSION=%s: release version %q (%v), want %q", in, got, err, want)
		}
	}
}

// TestReleaseChecksumsCoverEveryArtifact: checksums.txt holds the sha256
// of every other file, and they match.
func TestReleaseChecksumsCoverEveryArtifact(t *testing.T) {
	r := releaseArtifacts(t)
	listed := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(r.read(t, "checksums.txt")))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("checksums.txt: line %q", sc.Text())
		}
		listed[name] = sum
	}
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() == "checksums.txt" {
			continue
		}
		names = append(names, e.Name())
		sum := sha256.Sum256(r.read(t, e.Name()))
		if listed[e.Name()] != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: checksum %q listed, %x computed", e.Name(), listed[e.Name()], sum)
		}
	}
	for _, want := range []string{"install.yaml", "crds.yaml", "customer-operator-image.oci.tar", "scriptlock.yaml", "customer_v1alpha1.json",
		"sbom-manager-linux-amd64.cdx.json", "sbom-manager-linux-arm64.cdx.json", "sbom-kubectl-scriptlock.cdx.json", "scriptlock-customer-operator-" + strings.TrimPrefix(r.version, "v") + ".tgz",
		"kubectl-scriptlock_linux_amd64.tar.gz", "kubectl-scriptlock_darwin_arm64.tar.gz", "kubectl-scriptlock_windows_amd64.tar.gz"} {
		if !slices.Contains(names, want) {
			t.Errorf("the release lacks %s (it has %v)", want, names)
		}
	}
	if len(listed) != len(names) {
		t.Errorf("checksums.txt lists %d files, the release has %d", len(listed), len(names))
	}
}

// ociLayout is the files of the image's OCI layout tar.
type ociLayout map[string][]byte

func (l ociLayout) blob(t *testing.T, digest string, into any) []byte {
	t.Helper()
	b, ok := l["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
	if !ok {
		t.Fatalf("the layout lacks the blob %s", digest)
	}
	if sum := sha256.Sum256(b); "sha256:"+hex.EncodeToString(sum[:]) != digest {
		t.Fatalf("blob %s has another digest", digest)
	}
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Annotations map[string]string `json:"annotations"`
	Platform    struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

// TestReleaseImageRunsOnEveryPlatform: the image is an OCI index for
// linux/amd64 and linux/arm64, named IMAGE:VERSION; each image runs
// /manager as 65532 on a binary of its platform; the one of this machine's
// platform runs and prints the release's version.
func TestReleaseImageRunsOnEveryPlatform(t *testing.T) {
	r := releaseArtifacts(t)
	layout := ociLayout{}
	tr := tar.NewReader(bytes.NewReader(r.read(t, "customer-operator-image.oci.tar")))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			layout[h.Name] = b
		}
	}
	var top struct{ Manifests []descriptor }
	if err := json.Unmarshal(layout["index.json"], &top); err != nil || len(top.Manifests) != 1 {
		t.Fatalf("index.json: %v, %d entries", err, len(top.Manifests))
	}
	if name := top.Manifests[0].Annotations["org.opencontainers.image.ref.name"]; name != r.image+":"+r.version {
		t.Errorf("the image is named %q, want %s:%s", name, r.image, r.version)
	}
	var index struct{ Manifests []descriptor }
	layout.blob(t, top.Manifests[0].Digest, &index)
	var arches []string
	for _, m := range index.Manifests {
		arch := m.Platform.Architecture
		arches = append(arches, m.Platform.OS+"/"+arch)
		var manifest struct {
			Config descriptor
			Layers []descriptor
		}
		layout.blob(t, m.Digest, &manifest)
		var config struct {
			Architecture string
			Config       struct {
				User       string
				Entrypoint []string
			}
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		layout.blob(t, manifest.Config.Digest, &config)
		if config.Architecture != arch || config.Config.User != "65532:65532" || !slices.Equal(config.Config.Entrypoint, []string{"/manager"}) {
			t.Errorf("%s: config %+v", arch, config)
		}
		if len(manifest.Layers) != 1 || len(config.RootFS.DiffIDs) != 1 {
			t.Fatalf("%s: %d layers, %d diff_ids", arch, len(manifest.Layers), len(config.RootFS.DiffIDs))
		}
		zr, err := gzip.NewReader(bytes.NewReader(layout.blob(t, manifest.Layers[0].Digest, nil)))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != config.RootFS.DiffIDs[0] {
			t.Errorf("%s: the layer's diff_id does not match", arch)
		}
		manager := fileOf(t, raw, "manager")
		f, err := elf.NewFile(bytes.NewReader(manager))
		if err != nil {
			t.Fatalf("%s: /manager is no ELF binary: %v", arch, err)
		}
		if want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]; f.Machine != want {
			t.Errorf("%s: /manager is built for %s", arch, f.Machine)
		}
		if arch == runtime.GOARCH {
			bin := filepath.Join(t.TempDir(), "manager")
			if err := os.WriteFile(bin, manager, 0o755); err != nil { //nolint:gosec // a binary to run
				t.Fatal(err)
			}
			out, err := exec.CommandContext(t.Context(), bin, "--version").Output()
			if err != nil || strings.TrimSpace(string(out)) != r.version {
				t.Errorf("the image's /manager --version: %q, %v; want %s", out, err, r.version)
			}
		}
	}
	slices.Sort(arches)
	if !slices.Equal(arches, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("the image is for %v, want linux/amd64 and linux/arm64", arches)
	}
}

// fileOf returns the file at name (no leading slash) of a layer tar.
func fileOf(t *testing.T, layer []byte, name string) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("the layer has no /%s", name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(filepath.Clean("/"+h.Name), "/") == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// TestReleaseManifestsApplyToAnAPIServer: crds.yaml then install.yaml
// apply to a real kube-apiserver, and the Deployment runs IMAGE:VERSION.
func TestReleaseManifestsApplyToAnAPIServer(t *testing.T) {
	r := releaseArtifacts(t)
	crds, install := readObjects(t, filepath.Join(r.dir, "crds.yaml")), readObjects(t, filepath.Join(r.dir, "install.yaml"))
	if images := managerImages(t, install); !slices.Equal(images, []string{r.image + ":" + r.version}) {
		t.Errorf("install.yaml runs %v, want %s:%s", images, r.image, r.version)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := startAPIServer(t)
	for _, o := range slices.Concat(crds, install) {
		if err := apply(ctx, c, o, false); err != nil {
			t.Fatalf("applying %s: %v", id(o), err)
		}
	}
	for _, o := range slices.Concat(crds, install) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o.DeepCopy()); err != nil {
			t.Errorf("%s is not there: %v", id(o), err)
		}
	}
	waitEstablished(ctx, t, c, "customers.licensing.scriptlock.com")
}

// TestReleaseSBOMsListTheGoModules: each SBOM is CycloneDX and lists every
// module go.mod requires directly, at its version, as a Go package URL.
func TestReleaseSBOMsListTheGoModules(t *testing.T) {
	r := releaseArtifacts(t)
	gomod := readFile(t, "go.mod")
	for file, must := range map[string][]string{
		"sbom-manager-linux-amd64.cdx.json": {"sigs.k8s.io/controller-runtime", "k8s.io/client-go"},
		"sbom-manager-linux-arm64.cdx.json": {"sigs.k8s.io/controller-runtime", "k8s.io/client-go"},
		"sbom-kubectl-scriptlock.cdx.json":  {"github.com/spf13/cobra", "k8s.io/cli-runtime"},
	} {
		var bom struct {
			BOMFormat  string `json:"bomFormat"`
			Metadata   struct{ Component struct{ Name string } }
			Components []struct{ Name, Version, PURL string }
		}
		if err := json.Unmarshal(r.read(t, file), &bom); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if bom.BOMFormat != "CycloneDX" {
			t.Errorf("%s: bomFormat %q", file, bom.BOMFormat)
		}
		// pkg:golang/<path>@<version>?<qualifiers>, without the qualifiers.
		purls := map[string]bool{}
		for _, c := range bom.Components {
			p, _, _ := strings.Cut(c.PURL, "?")
			purls[p] = true
		}
		for _, path := range must {
			var version string
			if m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(path) + `\s+(v\S+)`).FindSubmatch(gomod); m != nil {
				version = string(m[1])
			}
			if want := "pkg:golang/" + path + "@" + version; version == "" || !purls[want] {
				t.Errorf("%s lacks %s (%d components)", file, want, len(bom.Components))
			}
		}
		if len(bom.Components) < 20 {
			t.Errorf("%s lists %d components: too few for the module graph", file, len(bom.Components))
		}
	}
}

// TestReleaseKrewManifestNamesTheArchives: the krew manifest has the
// release's version (SemVer, as krew requires), and one platform per
// archive, each with the archive's URL under the release and its sha256.
func TestReleaseKrewManifestNamesTheArchives(t *testing.T) {
	r := releaseArtifacts(t)
	var m struct {
		Kind string
		Spec struct {
			Version   string
			Platforms []struct {
				URI, SHA256 string
				Bin         string
			}
		}
	}
	if err := yaml.Unmarshal(r.read(t, "scriptlock.yaml"), &m); err != nil {
		t.Fatal(err)
	}
	if m.Kind != "Plugin" || m.Spec.Version != r.version || !semver.MatchString(m.Spec.Version) {
		t.Errorf("krew manifest: kind %q, version %q; want Plugin, %s", m.Kind, m.Spec.Version, r.version)
	}
	if len(m.Spec.Platforms) != 6 {
		t.Errorf("%d platforms, want 6", len(m.Spec.Platforms))
	}
	for _, p := range m.Spec.Platforms {
		name := filepath.Base(p.URI)
		if !strings.Contains(p.URI, "/releases/download/"+r.version+"/") {
			t.Errorf("%s is not under the release %s", p.URI, r.version)
		}
		sum := sha256.Sum256(r.read(t, name))
		if p.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: sha256 %s in the manifest, %x built", name, p.SHA256, sum)
		}
	}
}
