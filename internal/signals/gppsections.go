package signals

// The US sections of IAB's Global Privacy Platform as one table of field widths, read by one
// decoder (gpp.go). The fields, their order, widths and counts are those of IAB's own encoder,
// @iabgpp/cmpapi 3.2.0 (lib/mjs/encoder/segment/Us*Segment.js); the node script behind
// e2e/sdk/gppvectors.mjs prints that encoder's layout and TestGPPLayoutsMatchIAB compares it
// with this table field by field.

// role is what tollgate reads from a field; most fields (notices, MSPA modes) it does not use.
type role uint8

const (
	roleNone role = iota
	roleSale
	roleSharing
	roleTargeted
	roleSensitive // SensitiveDataProcessing: 1 = opted out / no consent
	roleChild     // KnownChildSensitiveDataConsents: 1 = no consent
	roleGPC
)

// roles maps a field name of IAB's encoder to what tollgate reads from it.
var roles = map[string]role{
	"SaleOptOut":                      roleSale,
	"SharingOptOut":                   roleSharing,
	"TargetedAdvertisingOptOut":       roleTargeted,
	"SensitiveDataProcessing":         roleSensitive,
	"KnownChildSensitiveDataConsents": roleChild,
	"Gpc":                             roleGPC,
}

// field is one fixed-width field; count > 1 is a list of count values of bits each.
type field struct {
	name        string
	bits, count int
	role        role
}

// usLayout is one version of one US section: the core segment and the optional second segment
// after a '.' (subName says which: the GPC segment, or the sensitive-data consents of the
// Indiana, Kentucky and Rhode Island sections).
type usLayout struct {
	id      int
	name    string
	version int
	core    []field
	subName string
	sub     []field
}

func f(name string, bits, count int) field { return field{name, bits, count, roles[name]} }

// two is a run of 2-bit fields (notices, opt-outs, consents: 0 n/a, 1 yes/opted out, 2 no).
func two(names ...string) []field {
	out := make([]field, len(names))
	for i, n := range names {
		out[i] = f(n, 2, 1)
	}
	return out
}

func cat(parts ...[]field) []field {
	var out []field
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var (
	version    = []field{f("Version", 6, 1)}
	mspa       = two("MspaCoveredTransaction", "MspaOptOutOptionMode", "MspaServiceProviderMode")
	processing = two("ProcessingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice", "SaleOptOut", "TargetedAdvertisingOptOut")
	vaNotices  = two("SharingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice", "SaleOptOut", "TargetedAdvertisingOptOut")
	adpc       = two("AdditionalDataProcessingConsent")
	gpcSegment = []field{f("GpcSegmentType", 2, 1), f("Gpc", 1, 1)}
	// The 2025 sections (MD, IN, KY, RI) start with the MSPA fields.
	mspa2025 = cat([]field{f("MspaVersion", 6, 1)}, two("MspaCoveredTransaction", "MspaMode"), processing)
)

func sdp(n int) []field { return []field{f("SensitiveDataProcessing", 2, n)} }
func kc(n int) []field  { return []field{f("KnownChildSensitiveDataConsents", 2, n)} }

// usnat is the national section; version 2 (2024, with the DE, IA, NE, NH, NJ, TN release)
// widened SensitiveDataProcessing from 12 to 16 and KnownChildSensitiveDataConsents from 2 to 3.
func usnat(v, sensitive, child int) usLayout {
	return usLayout{7, "usnat", v, cat(version,
		two("SharingNotice", "SaleOptOutNotice", "SharingOptOutNotice", "TargetedAdvertisingOptOutNotice",
			"SensitiveDataProcessingOptOutNotice", "SensitiveDataLimitUseNotice",
			"SaleOptOut", "SharingOptOut", "TargetedAdvertisingOptOut"),
		sdp(sensitive), kc(child), two("PersonalDataConsents"), mspa), "gpc", gpcSegment}
}

// state is the common shape of the state sections 13–23: notices and opt-outs, the sensitive
// data and known-child lists, then the additional-consent and MSPA fields.
func state(id int, name string, head []field, sensitive, child int, adc bool, gpc bool) usLayout {
	core := cat(version, head, sdp(sensitive), kc(child))
	if adc {
		core = cat(core, adpc)
	}
	l := usLayout{id: id, name: name, version: 1, core: cat(core, mspa)}
	if gpc {
		l.subName, l.sub = "gpc", gpcSegment
	}
	return l
}

// y2025 is the shape of the 2025 sections MD (24), IN (25), KY (26), RI (27).
func y2025(id int, name string, child bool, subName string, sub []field) usLayout {
	core := mspa2025
	if child {
		core = cat(core, kc(1))
	}
	return usLayout{id, name, 1, cat(core, adpc), subName, sub}
}

// usLayouts is every US section version IAB's GPP defines today (@iabgpp/cmpapi 3.2.0).
var usLayouts = []usLayout{
	usnat(1, 12, 2),
	usnat(2, 16, 3),
	{8, "usca", 1, cat(version,
		two("SaleOptOutNotice", "SharingOptOutNotice", "SensitiveDataLimitUseNotice", "SaleOptOut", "SharingOptOut"),
		sdp(9), kc(2), two("PersonalDataConsents"), mspa), "gpc", gpcSegment},
	state(9, "usva", vaNotices, 8, 1, false, false),
	state(10, "usco", vaNotices, 7, 1, false, true),
	state(11, "usut", two("SharingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice",
		"SensitiveDataProcessingOptOutNotice", "SaleOptOut", "TargetedAdvertisingOptOut"), 8, 1, false, false),
	state(12, "usct", vaNotices, 8, 3, false, true),
	state(13, "usfl", processing, 8, 3, true, false),
	state(14, "usmt", vaNotices, 8, 3, true, true),
	state(15, "usor", processing, 11, 3, true, true),
	state(16, "ustx", processing, 8, 1, true, true),
	state(17, "usde", processing, 9, 5, true, true),
	state(18, "usia", two("ProcessingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice",
		"SensitiveDataOptOutNotice", "SaleOptOut", "TargetedAdvertisingOptOut"), 8, 1, false, true),
	state(19, "usne", processing, 8, 1, true, true),
	state(20, "usnh", processing, 8, 3, true, true),
	state(21, "usnj", processing, 10, 5, true, true),
	state(22, "ustn", processing, 8, 1, true, true),
	state(23, "usmn", processing, 8, 1, true, true),
	y2025(24, "usmd", false, "gpc", gpcSegment),
	y2025(25, "usin", true, "sensitive", sdp(8)),
	y2025(26, "usky", true, "sensitive", sdp(8)),
	y2025(27, "usri", true, "sensitive", sdp(8)),
}

// usLayoutOf finds the layout of a section id and version; nil when tollgate cannot read it.
func usLayoutOf(id, version int) *usLayout {
	for i := range usLayouts {
		if l := &usLayouts[i]; l.id == id && l.version == version {
			return l
		}
	}
	return nil
}

// sectionNames are the names of the non-US sections IAB defines (the US ones are in usLayouts).
var sectionNames = map[int]string{1: "tcfeuv1", 2: "tcfeuv2", 5: "tcfcav1", 6: "uspv1"}

// SectionName is IAB's name of a GPP section id ("usnat", "tcfeuv2"), empty when unknown.
func SectionName(id int) string {
	if n, ok := sectionNames[id]; ok {
		return n
	}
	for _, l := range usLayouts {
		if l.id == id {
			return l.name
		}
	}
	return ""
}
