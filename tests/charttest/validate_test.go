package charttest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	kvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

// strictCodec decodes built-in kinds into their k8s.io/api Go types; unknown or duplicate
// fields are errors (what `kubectl apply --validate=strict` / fieldValidation=Strict reject).
var strictCodec = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

func decodeStrict(d doc, into runtime.Object) error {
	_, _, err := strictCodec.Decode([]byte(d.text), nil, into)
	return err
}

// crdSchema validates custom resources the way the API server does for a CRD version:
// structural schema, pruning of unknown fields (which we treat as errors, like
// fieldValidation=Strict), then the OpenAPI schema validator (types, enums, minimums, required).
type crdSchema struct {
	kind       string
	structural *structuralschema.Structural
	validator  validation.SchemaValidator
}

var (
	crdOnce    sync.Once
	crdSchemas map[string]*crdSchema // by kind
	crdErr     error
)

func kedaSchemas(t *testing.T) map[string]*crdSchema {
	t.Helper()
	crdOnce.Do(func() {
		crdSchemas = map[string]*crdSchema{}
		for _, f := range []string{"keda.sh_scaledjobs.yaml", "keda.sh_triggerauthentications.yaml"} {
			s, err := loadCRD(filepath.Join("testdata", "keda-crds", f))
			if err != nil {
				crdErr = fmt.Errorf("%s: %w", f, err)
				return
			}
			crdSchemas[s.kind] = s
		}
	})
	require.NoError(t, crdErr, "the vendored KEDA CRDs")
	return crdSchemas
}

func loadCRD(path string) (*crdSchema, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	crd := &apiextv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(b, crd); err != nil {
		return nil, err
	}
	for _, v := range crd.Spec.Versions {
		if v.Name != "v1alpha1" || v.Schema == nil {
			continue
		}
		internal := &apiext.JSONSchemaProps{}
		if err := apiextv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, internal, nil); err != nil {
			return nil, err
		}
		s, err := structuralschema.NewStructural(internal)
		if err != nil {
			return nil, err
		}
		if errs := structuralschema.ValidateStructural(nil, s); len(errs) > 0 {
			return nil, errs.ToAggregate()
		}
		val, _, err := validation.NewSchemaValidator(internal)
		if err != nil {
			return nil, err
		}
		return &crdSchema{kind: crd.Spec.Names.Kind, structural: s, validator: val}, nil
	}
	return nil, fmt.Errorf("no served v1alpha1 version")
}

func (c *crdSchema) validate(d doc) []string {
	// Decode like the API server: JSON numbers that are whole become int64.
	j, err := yaml.YAMLToJSON([]byte(d.text))
	if err != nil {
		return []string{err.Error()}
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(j, &obj); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	pruned := runtime.DeepCopyJSON(obj)
	opts := structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}
	for _, p := range pruning.PruneWithOptions(pruned, c.structural, true, opts) {
		problems = append(problems, "unknown field (the API server would drop it): "+p)
	}
	for _, e := range validation.ValidateCustomResource(nil, obj, c.validator) {
		problems = append(problems, e.Error())
	}
	return problems
}

// checkObjects: every object decodes strictly into its real type, or validates against KEDA's
// CRD schema; names and labels are valid. It returns every problem of every object.
func checkObjects(t *testing.T, r rendered) problemList {
	t.Helper()
	var problems problemList
	keda := kedaSchemas(t)
	for _, d := range r.docs {
		apiVersion, kind := str(d.obj["apiVersion"]), str(d.obj["kind"])
		name := str(get(d.obj, "metadata", "name"))
		where := fmt.Sprintf("%s %s (%s)", kind, name, d.source)
		for _, msg := range kvalidation.IsDNS1123Subdomain(name) {
			problems.add("%s: metadata.name: %s", where, msg)
		}
		if labels, ok := get(d.obj, "metadata", "labels").(map[string]any); ok {
			for k, v := range labels {
				for _, msg := range kvalidation.IsQualifiedName(k) {
					problems.add("%s: label %s: %s", where, k, msg)
				}
				for _, msg := range kvalidation.IsValidLabelValue(str(v)) {
					problems.add("%s: label %s=%v: %s", where, k, v, msg)
				}
			}
		}
		gv, err := schema.ParseGroupVersion(apiVersion)
		if err != nil {
			problems.add("%s: apiVersion: %v", where, err)
			continue
		}
		gvk := gv.WithKind(kind)
		switch {
		case scheme.Scheme.Recognizes(gvk):
			if err := decodeStrict(d, nil); err != nil {
				problems.add("%s: strict decode into %s: %v", where, gvk, err)
			}
		case gv.Group == "keda.sh":
			s, ok := keda[kind]
			if !ok || gv.Version != "v1alpha1" {
				problems.add("%s: no vendored KEDA CRD for %s", where, gvk)
				continue
			}
			for _, p := range s.validate(d) {
				problems.add("%s: KEDA v2.21.0 CRD: %s", where, p)
			}
			if kind == "ScaledJob" {
				// The CRD embeds batch/v1 JobSpec; decode it strictly into the real type too.
				b, _ := yaml.Marshal(get(d.obj, "spec", "jobTargetRef"))
				var js batchv1.JobSpec
				if err := yaml.UnmarshalStrict(b, &js); err != nil {
					problems.add("%s: spec.jobTargetRef is not a strict batch/v1 JobSpec: %v", where, err)
				}
			}
		case gvk == schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"},
			gvk == schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"}:
			for k := range d.obj {
				if k != "apiVersion" && k != "kind" && k != "metadata" && k != "spec" {
					problems.add("%s: unknown top-level field %q", where, k)
				}
			}
		default:
			problems.add("%s: unexpected kind %s: add a validation for it", where, gvk)
		}
	}
	return problems
}

// podOf is one pod template of the release: the app Deployment's, the processor Job's (inside
// the ScaledJob) and the helm test Pod.
type podOf struct {
	where string
	meta  metav1.ObjectMeta
	spec  corev1.PodSpec
}

func ourPods(t *testing.T, r rendered) []podOf {
	t.Helper()
	var ours []doc
	for _, d := range r.docs {
		if str(get(d.obj, "metadata", "labels", "app.kubernetes.io/part-of")) == "keda-demo" {
			ours = append(ours, d) // not bitnami's own workloads
		}
	}
	return podTemplates(t, ours, "")
}

// podTemplates decodes strictly the pod template of every workload among docs; each is named
// prefix + "<Kind> <name>".
func podTemplates(t *testing.T, docs []doc, prefix string) []podOf {
	t.Helper()
	var pods []podOf
	for _, d := range docs {
		var tmpl any
		switch d.obj["kind"] {
		case "Deployment", "StatefulSet", "DaemonSet", "Job":
			tmpl = get(d.obj, "spec", "template")
		case "CronJob":
			tmpl = get(d.obj, "spec", "jobTemplate", "spec", "template")
		case "ScaledJob":
			tmpl = get(d.obj, "spec", "jobTargetRef", "template")
		case "Pod":
			tmpl = map[string]any{"metadata": d.obj["metadata"], "spec": d.obj["spec"]}
		default:
			continue
		}
		where := fmt.Sprintf("%s%s %s", prefix, d.obj["kind"], str(get(d.obj, "metadata", "name")))
		b, err := yaml.Marshal(tmpl)
		require.NoError(t, err, where)
		var pt corev1.PodTemplateSpec
		require.NoErrorf(t, yaml.UnmarshalStrict(b, &pt), "%s: pod template", where)
		pods = append(pods, podOf{where: where, meta: pt.ObjectMeta, spec: pt.Spec})
	}
	return pods
}

var (
	pssOnce      sync.Once
	pssEvaluator policy.Evaluator
	pssErr       error
)

// checkRestricted evaluates every pod of ours with the Pod Security Admission library at the
// restricted level (what a namespace labelled pod-security.kubernetes.io/enforce=restricted
// enforces), plus a read-only root filesystem on top (the programs write nothing to disk). It
// returns every violation.
func checkRestricted(t *testing.T, r rendered) problemList {
	t.Helper()
	pods := ourPods(t, r)
	require.GreaterOrEqualf(t, len(pods), 3, "want the app, processor and helm test pods, got %d", len(pods))
	return restrictedProblems(t, pods, boundAccounts(r))
}

// boundAccounts are the ServiceAccounts the release's RoleBindings grant a Role to.
func boundAccounts(r rendered) map[string]bool {
	bound := map[string]bool{}
	for _, rb := range r.kind("RoleBinding") {
		for _, s := range get(rb.obj, "subjects").([]any) {
			if str(get(s, "kind")) == "ServiceAccount" {
				bound[str(get(s, "name"))] = true
			}
		}
	}
	return bound
}

// restrictedProblems: a pod mounts its ServiceAccount token only when the release binds a Role to
// that account (the app's Jobs view); any other pod has no use for one.
func restrictedProblems(t *testing.T, pods []podOf, bound map[string]bool) problemList {
	t.Helper()
	pssOnce.Do(func() { pssEvaluator, pssErr = policy.NewEvaluator(policy.DefaultChecks(), nil) })
	require.NoError(t, pssErr, "the Pod Security Admission evaluator")
	var problems problemList
	lv := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	for _, p := range pods {
		res := policy.AggregateCheckResults(pssEvaluator.EvaluatePod(lv, &p.meta, &p.spec))
		if !res.Allowed {
			problems = append(problems, fmt.Sprintf("%s violates the restricted Pod Security Standard: %s: %s", p.where, res.ForbiddenReason(), res.ForbiddenDetail()))
		}
		for _, c := range append(append([]corev1.Container{}, p.spec.InitContainers...), p.spec.Containers...) {
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				problems = append(problems, fmt.Sprintf("%s container %s: readOnlyRootFilesystem must be true", p.where, c.Name))
			}
		}
		mounted := p.spec.AutomountServiceAccountToken == nil || *p.spec.AutomountServiceAccountToken
		if mounted && !bound[p.spec.ServiceAccountName] {
			problems = append(problems, fmt.Sprintf("%s: automountServiceAccountToken must be false: no Role is bound to its ServiceAccount %q", p.where, p.spec.ServiceAccountName))
		}
	}
	return problems
}
