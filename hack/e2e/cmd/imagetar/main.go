// Command imagetar writes a single-layer image as a docker-archive tar (the
// format of `docker save`, which `ctr images import` reads), for a node that
// has no Docker and no registry.
//
// With -dockerfile it builds the operator's image the way its Dockerfile
// says: the builder stage's COPY lines (the build context filtered by
// .dockerignore) and RUN lines run in a scratch folder with TARGETOS,
// TARGETARCH and VERSION set as buildx sets them, then the final stage's
// COPY --from=builder, USER, WORKDIR, ENTRYPOINT and ENV make the image on
// top of what gcr.io/distroless/static:nonroot holds (CA certificates,
// /etc/passwd with nonroot 65532, /tmp, /home/nonroot). Any other
// instruction in the final stage is an error, so that a change to the
// Dockerfile cannot pass unnoticed.
//
// Without it, -binary, -entrypoint and -user make an image of that one
// binary and nothing else (the node's pause image).
//
// With -oci it writes, instead of a docker-archive, an OCI image layout in
// a tar whose index holds the image for this machine's platform and, for
// each -arch-binary ARCH=FILE, the same image for linux/ARCH with FILE as
// its binary: the release's multi-platform image (make release-dry-run;
// hack/release/dry-run.sh builds every platform's manager with the
// Dockerfile's own build line). `skopeo copy oci-archive:...`, `crane push`
// or `oras cp` push it as it is; the release workflow pushes the very
// layout the tests checked.
//
//	imagetar -dockerfile Dockerfile -version v0.1.0 -tag ghcr.io/scriptlock/customer-operator:v0.1.0 \
//	  -oci -arch-binary arm64=manager-arm64 -out customer-operator.oci.tar
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/scriptlock/customer-operator/hack/dockerfile"
)

// image is what the final stage says.
type image struct {
	binary     []byte // the one file copied in
	binaryPath string // where it goes, e.g. /manager
	user       string
	workdir    string
	entrypoint []string
	cmd        []string
	env        []string
	// distroless puts what gcr.io/distroless/static:nonroot holds under
	// the binary; otherwise the binary is alone (scratch).
	distroless bool
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "imagetar:", err)
		os.Exit(1)
	}
}

func run() error {
	dockerfileFlag := flag.String("dockerfile", "", "Dockerfile to build (its context is the folder it is in)")
	version := flag.String("version", "dev", "VERSION build argument (with -dockerfile)")
	binary := flag.String("binary", "", "the image's only binary (without -dockerfile)")
	entrypoint := flag.String("entrypoint", "", "path of the binary in the image and its entrypoint (without -dockerfile)")
	user := flag.String("user", "65532:65532", "USER (without -dockerfile)")
	tag := flag.String("tag", "", "image name, e.g. example.com/app:e2e")
	out := flag.String("out", "", "tar file to write")
	oci := flag.Bool("oci", false, "write an OCI image layout instead of a docker-archive")
	arches := binaries{}
	flag.Var(arches, "arch-binary", "ARCH=FILE, with -oci: the image for linux/ARCH too, FILE as its binary (repeatable)")
	flag.Parse()
	if *tag == "" || *out == "" {
		return errors.New("-tag and -out are required")
	}
	if len(arches) > 0 && !*oci {
		return errors.New("-arch-binary needs -oci")
	}

	var img image
	if *dockerfileFlag != "" {
		var err error
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if img, err = buildDockerfile(ctx, *dockerfileFlag, *version); err != nil {
			return err
		}
	} else {
		if *binary == "" || *entrypoint == "" {
			return errors.New("-binary and -entrypoint are required without -dockerfile")
		}
		b, err := os.ReadFile(*binary)
		if err != nil {
			return err
		}
		img = image{binary: b, binaryPath: *entrypoint, user: *user, workdir: "/", entrypoint: []string{*entrypoint}}
	}
	if *oci {
		return writeOCILayout(*out, *tag, img, arches)
	}
	layer, config, err := img.build(runtime.GOARCH)
	if err != nil {
		return err
	}
	return writeDockerArchive(*out, *tag, layer, config)
}

// binaries is -arch-binary ARCH=FILE, repeated.
type binaries map[string]string

func (b binaries) String() string { return fmt.Sprint(map[string]string(b)) }

func (b binaries) Set(v string) error {
	arch, file, ok := strings.Cut(v, "=")
	if !ok || arch == "" || file == "" {
		return fmt.Errorf("want ARCH=FILE, got %q", v)
	}
	b[arch] = file
	return nil
}

// buildDockerfile runs the builder stage and reads the final stage.
func buildDockerfile(ctx context.Context, file, version string) (image, error) {
	text, err := os.ReadFile(file)
	if err != nil {
		return image{}, err
	}
	root := filepath.Dir(file)
	stages := dockerfile.Stages(string(text))
	if len(stages) != 2 {
		return image{}, fmt.Errorf("%s has %d stages; imagetar knows a builder stage and a final stage", file, len(stages))
	}
	ignore, err := dockerfile.Ignore(root)
	if err != nil {
		return image{}, err
	}
	work, err := os.MkdirTemp("", "imagetar-")
	if err != nil {
		return image{}, err
	}
	defer os.RemoveAll(work)

	builderWorkdir, err := runBuilderStage(ctx, stages[0], root, ignore, work, version)
	if err != nil {
		return image{}, err
	}
	return readFinalStage(stages[1], work, builderWorkdir)
}

// runBuilderStage runs the builder stage's COPY and RUN lines in work,
// with buildx's arguments for this machine's platform, and returns the
// stage's WORKDIR.
func runBuilderStage(ctx context.Context, stage []dockerfile.Instruction, root string, ignore []string, work, version string) (string, error) {
	args := map[string]string{"TARGETOS": "linux", "TARGETARCH": runtime.GOARCH, "VERSION": version}
	env := os.Environ()
	builderWorkdir := "/"
	for _, s := range stage {
		switch instr, a := s.Cmd, s.Args; instr {
		case "FROM":
		case "ARG":
			name, def, _ := strings.Cut(a, "=")
			if _, ok := args[name]; !ok {
				args[name] = def
			}
		case "WORKDIR":
			builderWorkdir = a
		case "COPY":
			if err := dockerfile.Copy(root, ignore, a, work); err != nil {
				return "", fmt.Errorf("builder stage: %w", err)
			}
		case "RUN":
			cmd := exec.CommandContext(ctx, "sh", "-c", a)
			cmd.Dir = work
			cmd.Env = env
			for k, v := range args {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			fmt.Fprintf(os.Stderr, "imagetar: RUN %s\n", a)
			if err := cmd.Run(); err != nil {
				return "", fmt.Errorf("RUN %s: %w", a, err)
			}
		default:
			return "", fmt.Errorf("builder stage: %s is not supported", instr)
		}
	}

	return builderWorkdir, nil
}

// readFinalStage reads the final stage: the distroless base, the binary
// copied from the builder stage, and the image's settings.
func readFinalStage(stage []dockerfile.Instruction, work, builderWorkdir string) (image, error) {
	img := image{workdir: "/", distroless: true}
	for _, s := range stage {
		switch instr, a := s.Cmd, s.Args; instr {
		case "FROM":
			if a != "gcr.io/distroless/static:nonroot" {
				return image{}, fmt.Errorf("final stage FROM %s: imagetar reproduces gcr.io/distroless/static:nonroot only", a)
			}
		case "WORKDIR":
			img.workdir = a
		case "USER":
			img.user = a
		case "ENV":
			k, v, ok := strings.Cut(a, "=")
			if !ok {
				k, v, _ = strings.Cut(a, " ")
			}
			img.env = append(img.env, k+"="+strings.Trim(strings.TrimSpace(v), `"`))
		case "ENTRYPOINT", "CMD":
			var argv []string
			if err := json.Unmarshal([]byte(a), &argv); err != nil {
				return image{}, fmt.Errorf("%s %s: only the JSON form is supported", instr, a)
			}
			if instr == "ENTRYPOINT" {
				img.entrypoint = argv
			} else {
				img.cmd = argv
			}
		case "COPY":
			f := strings.Fields(a)
			if len(f) != 3 || f[0] != "--from=builder" || img.binary != nil {
				return image{}, fmt.Errorf("final COPY %s: imagetar supports one COPY --from=builder SRC DST", a)
			}
			src := f[1]
			if !path.IsAbs(src) {
				src = path.Join(builderWorkdir, src)
			}
			rel, err := filepath.Rel(builderWorkdir, src)
			if err != nil || strings.HasPrefix(rel, "..") {
				return image{}, fmt.Errorf("final COPY %s: the source is not under the builder's WORKDIR %s", a, builderWorkdir)
			}
			if img.binary, err = os.ReadFile(filepath.Join(work, rel)); err != nil {
				return image{}, err
			}
			img.binaryPath = f[2]
		default:
			return image{}, fmt.Errorf("final stage: %s is not supported", instr)
		}
	}
	if img.binary == nil {
		return image{}, errors.New("the final stage copies nothing from the builder")
	}
	return img, nil
}

// entry is one file or folder of the layer.
type entry struct {
	name     string
	mode     int64
	uid, gid int
	dir      bool
	data     []byte
}

// distrolessStatic is what gcr.io/distroless/static:nonroot holds that a
// static Go binary may use: users and groups (so uid 65532 has a name and a
// home), the CA certificates of this machine, a /tmp.
func distrolessStatic() ([]entry, error) {
	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		return nil, fmt.Errorf("CA certificates for the image: %w", err)
	}
	return []entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
			"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n")},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, uid: 65532, gid: 65532, dir: true},
		{name: "root/", mode: 0o700, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
	}, nil
}

// epoch is every file's time, so that the same inputs make the same image.
var epoch = time.Unix(0, 0).UTC()

// build returns the image's one layer (a tar) and its config (JSON) for
// linux/arch.
func (img image) build(arch string) (layer, config []byte, err error) {
	entries := []entry{{name: strings.TrimPrefix(img.binaryPath, "/"), mode: 0o755, data: img.binary}}
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if img.distroless {
		base, err := distrolessStatic()
		if err != nil {
			return nil, nil, err
		}
		entries = append(base, entries...)
		env = append(env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
	}
	env = append(env, img.env...)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: epoch, Format: tar.FormatPAX}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, nil, err
	}
	config, err = json.Marshal(map[string]any{
		"architecture": arch,
		"os":           "linux",
		"created":      epoch,
		"config": map[string]any{
			"User":       img.user,
			"Env":        env,
			"Entrypoint": img.entrypoint,
			"Cmd":        img.cmd,
			"WorkingDir": img.workdir,
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{digest(buf.Bytes())}},
		"history": []map[string]any{{"created": epoch, "created_by": "hack/e2e/cmd/imagetar"}},
	})
	return buf.Bytes(), config, err
}

// digest is "sha256:<hex>" of b.
func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// writeDockerArchive writes manifest.json, the image config and its layer
// as `docker save` does.
func writeDockerArchive(out, tag string, layer, config []byte) error {
	configName := strings.TrimPrefix(digest(config), "sha256:") + ".json"
	layerDir := strings.TrimPrefix(digest(layer), "sha256:") + "/"
	manifest, err := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": []string{tag}, "Layers": []string{layerDir + "layer.tar"}}})
	if err != nil {
		return err
	}
	return writeTar(out, []tarFile{{configName, config}, {layerDir, nil}, {layerDir + "layer.tar", layer}, {"manifest.json", manifest}})
}

// blob is a content-addressed file of an OCI layout.
type blob struct {
	mediaType string
	data      []byte
}

func (b blob) descriptor(extra map[string]any) map[string]any {
	d := map[string]any{"mediaType": b.mediaType, "digest": digest(b.data), "size": len(b.data)}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

// writeOCILayout writes an OCI image layout (oci-layout, index.json,
// blobs/sha256/...) whose index.json names tag and holds an index of img
// for this machine's platform and, for each of arches, img for linux/ARCH
// with that file as its binary.
func writeOCILayout(out, tag string, img image, arches binaries) error {
	images := map[string]image{runtime.GOARCH: img}
	for arch, file := range arches {
		if arch == runtime.GOARCH {
			return fmt.Errorf("-arch-binary %s: the image for this machine's platform is already %s", arch, arch)
		}
		other := img
		var err error
		if other.binary, err = os.ReadFile(file); err != nil {
			return err
		}
		images[arch] = other
	}
	var blobs []blob
	var manifests []map[string]any
	for _, arch := range slices.Sorted(maps.Keys(images)) {
		layer, config, err := images[arch].build(arch)
		if err != nil {
			return err
		}
		var gz bytes.Buffer
		zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write(layer); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		cfg := blob{"application/vnd.oci.image.config.v1+json", config}
		lay := blob{"application/vnd.oci.image.layer.v1.tar+gzip", gz.Bytes()}
		mj, err := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     "application/vnd.oci.image.manifest.v1+json",
			"config":        cfg.descriptor(nil),
			"layers":        []any{lay.descriptor(nil)},
		})
		if err != nil {
			return err
		}
		m := blob{"application/vnd.oci.image.manifest.v1+json", mj}
		blobs = append(blobs, cfg, lay, m)
		manifests = append(manifests, m.descriptor(map[string]any{"platform": map[string]any{"os": "linux", "architecture": arch}}))
	}
	ij, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests})
	if err != nil {
		return err
	}
	index := blob{"application/vnd.oci.image.index.v1+json", ij}
	top, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []any{index.descriptor(map[string]any{"annotations": map[string]string{"org.opencontainers.image.ref.name": tag}})},
	})
	if err != nil {
		return err
	}
	files := []tarFile{{"blobs/", nil}, {"blobs/sha256/", nil}, {"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {"index.json", top}}
	seen := map[string]bool{}
	for _, b := range append(blobs, index) {
		if d := digest(b.data); !seen[d] {
			seen[d] = true
			files = append(files, tarFile{"blobs/sha256/" + strings.TrimPrefix(d, "sha256:"), b.data})
		}
	}
	return writeTar(out, files)
}

// tarFile is a file of an archive; a name ending in "/" is a folder.
type tarFile struct {
	name string
	data []byte
}

// writeTar writes files to out as a tar.
func writeTar(out string, files []tarFile) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.data)), ModTime: epoch}
		if strings.HasSuffix(f.name, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644) //nolint:gosec // an image, readable by all
}
