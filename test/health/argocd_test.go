package health

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

var (
	update    = flag.Bool("update", false, "rewrite config/argocd/argocd-cm-patch.yaml from config/argocd/health.lua")
	argocdOut = flag.String("argocd-out", "", "write Argo CD's resource_customizations folder for the Customer (health.lua, health_test.yaml, testdata/) under this absolute directory")
)

// healthKey is the argocd-cm key of the Customer's health check.
const healthKey = "resource.customizations.health.licensing.scriptlock.com_Customer"

func healthLua(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "config", "argocd", "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// toLua converts a decoded JSON/YAML value to Lua as Argo CD hands objects
// to health scripts: objects become tables, arrays 1-based tables.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case map[string]any:
		t := L.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []any:
		t := L.NewTable()
		for _, e := range v {
			t.Append(toLua(L, e))
		}
		return t
	default:
		panic(fmt.Sprintf("unexpected %T", v))
	}
}

type argoHealth struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// runLua runs the health script with obj set, as Argo CD does, and reads
// the table it returns.
func runLua(t *testing.T, script string, obj map[string]any) argoHealth {
	t.Helper()
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoString(script); err != nil {
		t.Fatalf("health.lua: %v", err)
	}
	tbl, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("health.lua returned %s, want a table", L.Get(-1).Type())
	}
	return argoHealth{Status: lua.LVAsString(tbl.RawGetString("status")), Message: lua.LVAsString(tbl.RawGetString("message"))}
}

// TestArgoCDHealth runs config/argocd/health.lua over every fixture.
// Besides the status: never an empty message; Degraded names the reason
// and the operator's message; Suspended says paused.
func TestArgoCDHealth(t *testing.T) {
	script := healthLua(t)
	for _, f := range loadFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			hs := runLua(t, script, f.obj.DeepCopy().Object)
			if want := expected[f.name].argo; hs.Status != want {
				t.Errorf("Argo CD: %s (%q), want %s", hs.Status, hs.Message, want)
			}
			if hs.Message == "" {
				t.Error("empty message")
			}
			switch hs.Status {
			case degraded:
				if !strings.Contains(hs.Message, ": ") {
					t.Errorf("Degraded message %q does not name reason and message", hs.Message)
				}
			case suspended:
				if !strings.Contains(hs.Message, "Paused") {
					t.Errorf("Suspended message %q does not say paused", hs.Message)
				}
			}
		})
	}
}

// TestArgoCDMessages pins a few messages users read in the UI.
func TestArgoCDMessages(t *testing.T) {
	script := healthLua(t)
	want := map[string]string{
		"observe-differs":           "Differs: ScriptLock customer 42 differs from the spec in lastName; managementPolicy: Observe writes nothing (set it to Manage to write the spec)",
		"just-applied":              "Waiting for the operator to pick up this Customer (no status yet)",
		"generation-behind-ready":   "Waiting for the operator to observe generation 3 (it last observed 2)",
		"deleting-deletion-blocked": "Deletion blocked: DeletionBlocked: ScriptLock refused to delete customer 42: 409 Conflict: customer has active licenses",
	}
	for _, f := range loadFixtures(t) {
		if m, ok := want[f.name]; ok {
			if hs := runLua(t, script, f.obj.Object); hs.Message != m {
				t.Errorf("%s: message %q, want %q", f.name, hs.Message, m)
			}
		}
	}
}

// argoTests is Argo CD's health_test.yaml.
type argoTests struct {
	Tests []struct {
		HealthStatus argoHealth `json:"healthStatus"`
		InputPath    string     `json:"inputPath"`
	} `json:"tests"`
}

// writeArgoCDCustomization lays out the health check as Argo CD's built-in
// resource_customizations want it, under dir:
// resource_customizations/licensing.scriptlock.com/Customer/ with
// health.lua, testdata/ (the fixtures) and health_test.yaml (each fixture
// with the status and message the script returns). It is generated, not
// kept: health.lua and testdata/ are its only sources.
func writeArgoCDCustomization(t *testing.T, dir string) string {
	t.Helper()
	script := healthLua(t)
	out := filepath.Join(dir, "resource_customizations", "licensing.scriptlock.com", "Customer")
	if err := os.RemoveAll(out); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(out, "testdata"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p string, b []byte) {
		if err := os.WriteFile(filepath.Join(out, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var tests bytes.Buffer
	tests.WriteString("# Generated from the operator's config/argocd/health.lua and test/health/testdata.\ntests:\n")
	for _, f := range loadFixtures(t) {
		b, err := yaml.Marshal(map[string]any{"healthStatus": runLua(t, script, f.obj.Object), "inputPath": "testdata/" + f.name + ".yaml"})
		if err != nil {
			t.Fatal(err)
		}
		tests.WriteString("- " + strings.ReplaceAll(strings.TrimSuffix(string(b), "\n"), "\n", "\n  ") + "\n")
		write(filepath.Join("testdata", f.name+".yaml"), f.raw)
	}
	write("health.lua", []byte(script))
	write("health_test.yaml", tests.Bytes())
	return out
}

// TestArgoCDResourceCustomization writes the folder to offer to Argo CD
// (to -argocd-out, or a temporary directory) and reads it back as Argo
// CD's own test does: health_test.yaml names every file of testdata/ and
// nothing else, and the written health.lua returns for each the status
// and message written beside it.
func TestArgoCDResourceCustomization(t *testing.T) {
	dir := *argocdOut
	if dir == "" {
		dir = t.TempDir()
	}
	out := writeArgoCDCustomization(t, dir)

	script, err := os.ReadFile(filepath.Join(out, "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "health_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tests argoTests
	if err := yaml.UnmarshalStrict(b, &tests); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(out, "testdata", "*.yaml"))
	if len(tests.Tests) != len(files) || len(files) != len(loadFixtures(t)) {
		t.Errorf("health_test.yaml has %d tests, testdata/ %d files, test/health/testdata %d fixtures", len(tests.Tests), len(files), len(loadFixtures(t)))
	}
	for _, tc := range tests.Tests {
		raw, err := os.ReadFile(filepath.Join(out, tc.InputPath))
		if err != nil {
			t.Errorf("%s: %v", tc.InputPath, err)
			continue
		}
		var obj map[string]any
		if err := yaml.Unmarshal(raw, &obj); err != nil {
			t.Fatal(err)
		}
		if got := runLua(t, string(script), obj); got != tc.HealthStatus {
			t.Errorf("%s: health.lua returns %+v, health_test.yaml says %+v", tc.InputPath, got, tc.HealthStatus)
		}
	}
	if *argocdOut != "" {
		t.Logf("wrote %s", out)
	}
}

// cmPatchHeader opens config/argocd/argocd-cm-patch.yaml.
const cmPatchHeader = `# Adds the Customer health check to Argo CD. Generated from health.lua by
# go test ./test/health -run TestArgoCDConfigMapPatch -update: edit that,
# not this. Apply with the Component in this folder, or as a patch of your
# own Argo CD kustomization:
#   patches:
#   - path: <this file>
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
data:
  ` + healthKey + `: |
`

// cmPatch is argocd-cm-patch.yaml for script: the script as a literal
// block, indented under the key.
func cmPatch(script string) []byte {
	var b bytes.Buffer
	b.WriteString(cmPatchHeader)
	for _, line := range strings.SplitAfter(script, "\n") {
		if strings.TrimSpace(line) != "" {
			b.WriteString("    ")
		}
		b.WriteString(line)
	}
	return b.Bytes()
}

// TestArgoCDConfigMapPatch: the argocd-cm patch is what health.lua
// generates (-update rewrites it), it carries health.lua verbatim, and
// config/argocd, used as a kustomize Component over an Argo CD install,
// adds it to argocd-cm without touching its other keys.
func TestArgoCDConfigMapPatch(t *testing.T) {
	script := healthLua(t)
	path := filepath.Join(repoRoot, "config", "argocd", "argocd-cm-patch.yaml")
	if *update {
		if err := os.WriteFile(path, cmPatch(script), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, cmPatch(script)) {
		t.Fatalf("config/argocd/argocd-cm-patch.yaml is stale: run go test ./test/health -run TestArgoCDConfigMapPatch -update")
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data[healthKey] != script {
		t.Fatalf("argocd-cm-patch.yaml's %s differs from health.lua", healthKey)
	}

	fs := filesys.MakeFsInMemory()
	for _, name := range []string{"kustomization.yaml", "argocd-cm-patch.yaml"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, "config", "argocd", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := fs.WriteFile("/app/component/"+name, b); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(fs.WriteFile("/app/argocd-cm.yaml", []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/part-of: argocd
data:
  timeout.reconciliation: 180s
`)))
	must(fs.WriteFile("/app/kustomization.yaml", []byte(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: argocd
resources:
- argocd-cm.yaml
components:
- component
`)))
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, "/app")
	if err != nil {
		t.Fatal(err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	var built struct {
		Metadata struct {
			Name, Namespace string
		} `json:"metadata"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(out, &built); err != nil {
		t.Fatal(err)
	}
	if built.Metadata.Name != "argocd-cm" || built.Data[healthKey] != script || built.Data["timeout.reconciliation"] != "180s" {
		t.Fatalf("kustomize build with the component:\n%s", out)
	}
}
