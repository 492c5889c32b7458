package report

import "github.com/tollgate-dev/tollgate/internal/policy"

// fieldView is a field path as the HTML reports show it: the kind of information in words, the
// path beside it in small type (for whoever checks it against the policy).
type fieldView struct {
	Label, Path string
}

// fieldViews labels paths with labels (path → words); a path without one is labelled by the
// policy rules (policy.Label) with no policy-specific labels.
func fieldViews(paths []string, labels map[string]string) []fieldView {
	out := make([]fieldView, len(paths))
	for i, p := range paths {
		l := labels[p]
		if l == "" {
			l = (&policy.Policy{}).Label(p)
		}
		out[i] = fieldView{Label: l, Path: p}
	}
	return out
}

// labelsFor is the policy's label of each path.
func labelsFor(pol *policy.Policy, paths ...[]string) map[string]string {
	out := map[string]string{}
	for _, ps := range paths {
		for _, p := range ps {
			out[p] = pol.Label(p)
		}
	}
	return out
}
