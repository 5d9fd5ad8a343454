// Command release turns the operator's image for this machine's platform,
// as hack/e2e/cmd/imagetar builds it from the Dockerfile (a docker-archive
// tar), into a multi-platform image: an OCI image layout, in a tar, whose
// index holds that image and, for each other platform, the same image with
// /manager replaced by the manager built for that platform with the
// Dockerfile's own build line (make release-dry-run runs it). No Docker,
// no registry: `skopeo copy oci-archive:...`, `crane push` or `oras cp` push
// the layout as it is; the release workflow builds the same image with
// docker buildx instead.
//
//	go run ./hack/release -docker-archive image-amd64.tar -binary arm64=manager-arm64 \
//	  -tag ghcr.io/scriptlock/customer-operator:v0.1.0 -out customer-operator.oci.tar
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// binaries is -binary ARCH=FILE, repeated.
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

func main() {
	bins := binaries{}
	archive := flag.String("docker-archive", "", "the image for this machine's platform, as imagetar writes it")
	flag.Var(bins, "binary", "ARCH=FILE: an image for linux/ARCH with FILE as /manager (repeatable)")
	tag := flag.String("tag", "", "the image's name and tag, kept as the index's org.opencontainers.image.ref.name")
	out := flag.String("out", "", "the OCI layout tar to write")
	flag.Parse()
	if err := run(*archive, bins, *tag, *out); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

// blob is a content-addressed file of the layout.
type blob struct {
	mediaType string
	data      []byte
}

func (b blob) digest() string {
	sum := sha256.Sum256(b.data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (b blob) descriptor(extra map[string]any) map[string]any {
	d := map[string]any{"mediaType": b.mediaType, "digest": b.digest(), "size": len(b.data)}
	for k, v := range extra {
		d[k] = v
	}
	return d
}

func run(archive string, bins binaries, tag, out string) error {
	if archive == "" || tag == "" || out == "" {
		return errors.New("-docker-archive, -tag and -out are required")
	}
	files, err := readTar(archive)
	if err != nil {
		return err
	}
	var manifest []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		return fmt.Errorf("%s: manifest.json: %w", archive, err)
	}
	if len(manifest) != 1 || len(manifest[0].Layers) != 1 {
		return fmt.Errorf("%s: want one image of one layer (imagetar's), got %d", archive, len(manifest))
	}
	var config map[string]any
	if err := json.Unmarshal(files[manifest[0].Config], &config); err != nil {
		return fmt.Errorf("%s: config: %w", archive, err)
	}
	layer := files[manifest[0].Layers[0]]
	hostArch, _ := config["architecture"].(string)

	images := map[string][]byte{hostArch: layer}
	for arch, file := range bins {
		if arch == hostArch {
			return fmt.Errorf("-binary %s: the archive's image is already %s", arch, arch)
		}
		bin, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if images[arch], err = replaceFile(layer, "manager", bin); err != nil {
			return err
		}
	}

	var blobs []blob
	var manifests []map[string]any
	arches := make([]string, 0, len(images))
	for a := range images {
		arches = append(arches, a)
	}
	slices.Sort(arches)
	for _, arch := range arches {
		raw := images[arch]
		diffID := sha256.Sum256(raw)
		var gz bytes.Buffer
		zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write(raw); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		c := deepCopy(config)
		c["architecture"] = arch
		c["rootfs"] = map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diffID[:])}}
		cj, err := json.Marshal(c)
		if err != nil {
			return err
		}
		cfg := blob{"application/vnd.oci.image.config.v1+json", cj}
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
	blobs = append(blobs, index)
	top, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []any{index.descriptor(map[string]any{"annotations": map[string]string{"org.opencontainers.image.ref.name": tag}})},
	})
	if err != nil {
		return err
	}
	return writeLayout(out, blobs, top)
}

// readTar returns the regular files of a tar by name.
func readTar(file string) (map[string][]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if h.Typeflag == tar.TypeReg {
			if out[h.Name], err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
	}
}

// replaceFile returns the layer tar with the file at name (without a
// leading slash) holding data instead, every other entry as it was.
func replaceFile(layer []byte, name string, data []byte) ([]byte, error) {
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(layer))
	found := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		if path.Clean("/"+h.Name) == "/"+name {
			found = true
			body, h.Size = data, int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, fmt.Errorf("the image has no /%s", name)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func deepCopy(m map[string]any) map[string]any {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return c
}

// writeLayout writes an OCI image layout (oci-layout, index.json,
// blobs/sha256/...) as a tar, with fixed times so that the same inputs
// make the same file.
func writeLayout(out string, blobs []blob, index []byte) error {
	epoch := time.Unix(0, 0).UTC()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	if err := write("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := write("index.json", index); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, b := range blobs {
		d := b.digest()
		if seen[d] {
			continue
		}
		seen[d] = true
		if err := write("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), b.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644) //nolint:gosec // a release artifact, readable by all
}
