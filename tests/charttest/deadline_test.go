package charttest

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runMargin is what the processor adds to WORK_DURATION for its own deadline when RUN_TIMEOUT is
// unset (processor/internal/config RunMargin; templates/_validate.tpl uses the same 60 s).
const runMargin = 60 * time.Second

// TestJobDeadlineOutlastsTheRun: the Job's activeDeadlineSeconds is a value of its own, sized for
// node provisioning, and in every render case exceeds the processor's own bound on its run
// (RUN_TIMEOUT, which the chart leaves at WORK_DURATION + 60 s: one formula, in the program).
func TestJobDeadlineOutlastsTheRun(t *testing.T) {
	want := map[string]int{"defaults": 1800, "ci/dev": 300, "ci/production": 1800}
	for _, c := range renderCases(t) {
		t.Run(c.name, func(t *testing.T) {
			r := mustRender(t, values(t, c.files, c.sets...))
			ads := toInt(get(r.one(t, "ScaledJob").obj, "spec", "jobTargetRef", "activeDeadlineSeconds"))
			if w, ok := want[c.name]; ok {
				require.Equal(t, w, ads)
			}
			env := envMap(processorPod(t, r).spec.Containers[0])
			require.NotContains(t, env, "RUN_TIMEOUT", "the chart leaves RUN_TIMEOUT to the program's formula, which its deadline check repeats")
			work, err := time.ParseDuration(env["WORK_DURATION"])
			require.NoError(t, err)
			require.Greater(t, time.Duration(ads)*time.Second, work+runMargin,
				"activeDeadlineSeconds %d must exceed the processor's own bound WORK_DURATION %s + %s", ads, work, runMargin)
		})
	}
}

func TestJobDeadlineValues(t *testing.T) {
	refused := []struct {
		name string
		sets []string
		want []string
	}{
		{"the old margin key", []string{"processor.job.activeDeadlineMarginSeconds=120"},
			[]string{"processor.job.activeDeadlineMarginSeconds was replaced by processor.job.activeDeadlineSeconds", "default 1800"}},
		{"the old margin key next to the new one", []string{"processor.job.activeDeadlineMarginSeconds=60", "processor.job.activeDeadlineSeconds=900"},
			[]string{"processor.job.activeDeadlineMarginSeconds was replaced by processor.job.activeDeadlineSeconds"}},
		{"a deadline the run can reach", []string{"processor.job.activeDeadlineSeconds=80"},
			[]string{"processor.job.activeDeadlineSeconds=80 must exceed processor.workDurationSeconds + 60 = 80", "RUN_TIMEOUT"}},
		{"long work under the default deadline", []string{"processor.workDurationSeconds=1800"},
			[]string{"processor.job.activeDeadlineSeconds=1800 must exceed processor.workDurationSeconds + 60 = 1860"}},
		{"not a number", []string{"processor.job.activeDeadlineSeconds=soon"}, []string{"activeDeadlineSeconds"}},
		{"zero", []string{"processor.job.activeDeadlineSeconds=0"}, []string{"activeDeadlineSeconds"}},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, values(t, nil, c.sets...))
			require.Error(t, err, "%v rendered", c.sets)
			for _, w := range c.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
	for _, c := range []struct {
		work, ads int
	}{{20, 81}, {1800, 3600}, {0, 61}} {
		t.Run(fmt.Sprintf("work %d deadline %d", c.work, c.ads), func(t *testing.T) {
			r := mustRender(t, values(t, nil, fmt.Sprintf("processor.workDurationSeconds=%d", c.work), fmt.Sprintf("processor.job.activeDeadlineSeconds=%d", c.ads)))
			require.Equal(t, c.ads, toInt(get(r.one(t, "ScaledJob").obj, "spec", "jobTargetRef", "activeDeadlineSeconds")))
		})
	}
}
