// Prints, as one JSON document, test vectors written by IAB's own encoders: @iabgpp/cmpapi's
// GppModel for every GPP section and @iabtcf/core for TC strings (with publisher restrictions).
// The output is deterministic (every date is fixed); internal/signals/testdata/iab_vectors.json
// is this output, and e2e's TestIABVectorsAreIABs runs this script and compares. Regenerate with
//
//   (cd e2e/sdk && npm ci && node iabvectors.mjs > ../../internal/signals/testdata/iab_vectors.json)
//
// layouts: each US section's fields as IAB's encoder declares them (name, bits, count), per
// segment, for TestGPPLayoutsMatchIAB. us: per US section, a "kept" string (every opt-out says
// 2, did not opt out), an "out" one (SaleOptOut 1), and one per field with that field alone at
// its largest value (every bit set), each with the fields IAB's own decoder reads back from it.
// tcf: TC strings and GPP TCF sections with the purposes, vendors and restrictions they carry.
import * as gpp from "@iabgpp/cmpapi";
import { GVL, TCModel, TCString, PurposeRestriction, RestrictionType } from "@iabtcf/core";

const { GppModel, RangeEntry } = gpp;
const day = new Date(Date.UTC(2026, 0, 1));

// Every US section class IAB's encoder exports (ids 7 and up).
const usClasses = Object.values(gpp)
  .filter((c) => typeof c === "function" && Number.isInteger(c.ID) && c.ID >= 7 && typeof c.NAME === "string")
  .sort((a, b) => a.ID - b.ID);

// fieldSpec is one field of a segment as the encoder declares it.
function fieldSpec(name, f) {
  const t = f.constructor.name;
  if (t === "EncodableFixedInteger") return { name, bits: f.bitStringLength, count: 1 };
  if (t === "EncodableFixedIntegerList") return { name, bits: f.elementBitStringLength, count: f.numElements };
  if (t === "EncodableBoolean") return { name, bits: 1, count: 1 };
  throw new Error(`${name}: field type ${t} not expected in a US section`);
}

function layout(C) {
  const segments = new C().initializeSegments().map((seg) => {
    const fields = seg.initializeFields();
    return seg.getFieldNames().map((n) => fieldSpec(n, fields.get(n)));
  });
  return { id: C.ID, name: C.NAME, version: C.VERSION, segments };
}

// decoded is what IAB's own decoder reads from a string's section.
function decoded(s, name) {
  return new GppModel(s).getSection(name);
}

// encode builds a string with set applied to a fresh model; force sets fields to values the
// encoder's validators refuse (every bit set), by writing the field's value directly.
function encode(name, set, force = {}) {
  const m = new GppModel();
  for (const [k, v] of Object.entries(set)) m.setFieldValue(name, k, v);
  if (Object.keys(force).length) {
    const sec = m.sections.get(name);
    for (const seg of sec.segments) {
      for (const [k, v] of Object.entries(force)) {
        if (seg.fields.containsKey(k)) {
          seg.fields.get(k).value = v;
          seg.dirty = true;
        }
      }
    }
    sec.dirty = true;
    m.dirty = true;
  }
  return m.encode();
}

function vector(C, kind, field, set, force) {
  const s = encode(C.NAME, set, force);
  return { id: C.ID, name: C.NAME, kind, field, gpp: s, fields: decoded(s, C.NAME) };
}

const skip = new Set(["Version", "MspaVersion", "GpcSegmentType"]);
const optOuts = ["SaleOptOut", "SharingOptOut", "TargetedAdvertisingOptOut"];

function usVectors(C, version) {
  const l = layout(C);
  const all = l.segments.flat();
  const has = (n) => all.some((f) => f.name === n);
  const vfield = l.segments[0][0].name; // Version, or MspaVersion in the 2025 sections
  const base = { [vfield]: version || C.VERSION };
  const kept = { ...base };
  if (has("SaleOptOutNotice")) kept.SaleOptOutNotice = 1;
  for (const n of optOuts) if (has(n)) kept[n] = 2;
  const tag = version ? `${C.NAME} v${version}` : C.NAME;
  const out = [
    vector(C, "kept", "", kept),
    vector(C, "out", "", { ...kept, SaleOptOut: 1 }),
  ];
  for (const f of all) {
    if (skip.has(f.name)) continue;
    const max = f.bits === 1 ? true : 2 ** f.bits - 1;
    const v = f.count > 1 ? Array(f.count).fill(max) : max;
    out.push(vector(C, "max", f.name, base, { [f.name]: v }));
  }
  // The version at its largest: a version tollgate does not know (it fails closed).
  if (!version) out.push(vector(C, "version", vfield, base, { [vfield]: 63 }));
  return out.map((v) => ({ ...v, tag }));
}

const us = [];
for (const C of usClasses) {
  us.push(...usVectors(C));
  if (C.NAME === "usnat") us.push(...usVectors(C, 1)); // the national section's version 1 layout
}

// uspv1 (6): US Privacy strings.
const usp = ["Y", "N", "-"].map((optOut) => {
  const s = encode("uspv1", { Notice: "Y", OptOutSale: optOut, LspaCovered: "N" });
  return { id: 6, name: "uspv1", tag: "uspv1", kind: optOut === "Y" ? "out" : "kept", field: "", gpp: s, fields: decoded(s, "uspv1") };
});

// TCF: purposes 1, 2, 3, 4, 7 and vendors 755 and 1000 consented; the publisher does not allow
// vendor 1000 purpose 1 (type 0) and requires consent (type 1) of vendor 755 for purpose 2.
const purposes = [1, 2, 3, 4, 7];
const vendors = [755, 1000];
const restrictions = [
  { purpose: 1, type: 0, vendor: 1000 },
  { purpose: 2, type: 1, vendor: 755 },
];

// gvl is a vendor list of the two vendors (the encoder keeps only consents of listed vendors).
function gvl() {
  const named = (ids) => Object.fromEntries(ids.map((id) => [id, { id, name: `p${id}`, description: "", illustrations: [] }]));
  // Vendor 755 asks purpose 2 under legitimate interest, which the publisher can turn into a
  // consent requirement (type 1): the encoder keeps only restrictions a vendor can be under.
  const vendor = (id) => ({
    id, name: `vendor ${id}`, purposes: id === 755 ? [1, 3, 4, 7] : [1, 2, 3, 4, 7],
    legIntPurposes: id === 755 ? [2] : [], flexiblePurposes: [2],
    specialPurposes: [], features: [], specialFeatures: [], cookieMaxAgeSeconds: 0, usesCookies: false,
    cookieRefresh: false, usesNonCookieAccess: false, urls: [{ langId: "en", privacy: "https://example.com", legIntClaim: "" }],
  });
  return new GVL({
    gvlSpecificationVersion: 3, vendorListVersion: 100, tcfPolicyVersion: 4, lastUpdated: day.toISOString(),
    purposes: named([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), specialPurposes: named([1, 2, 3]), features: named([1, 2, 3]),
    specialFeatures: named([1, 2]), stacks: {}, dataCategories: {},
    vendors: Object.fromEntries(vendors.map((id) => [id, vendor(id)])),
  });
}

function iabtcf() {
  const m = new TCModel(gvl());
  m.cmpId = 10;
  m.cmpVersion = 1;
  m.vendorListVersion = 100;
  m.tcfPolicyVersion = 4;
  m.created = day;
  m.lastUpdated = day;
  m.isServiceSpecific = true;
  m.purposeConsents.set(purposes);
  m.vendorConsents.set(vendors);
  for (const r of restrictions) {
    m.publisherRestrictions.add(r.vendor, new PurposeRestriction(r.purpose, r.type === 0 ? RestrictionType.NOT_ALLOWED : RestrictionType.REQUIRE_CONSENT));
  }
  return TCString.encode(m, { isForVendors: false });
}

// gppTCF encodes a TCF section; the dates go last, as setting any other field stamps them now.
function gppTCF(name, fields) {
  const m = new GppModel();
  for (const [k, v] of Object.entries(fields)) m.setFieldValue(name, k, v);
  m.setFieldValue(name, "Created", day);
  m.setFieldValue(name, "LastUpdated", day);
  return m.encode();
}

const bits = (n, on) => Array.from({ length: n }, (_, i) => on.includes(i + 1));
const ranges = restrictions.map((r) => new RangeEntry(r.purpose, r.type, [r.vendor]));
const tcf = [
  { source: "tcf", name: "@iabtcf/core TCString", tc: iabtcf() },
  {
    source: "gpp", id: 2, name: "tcfeuv2", gpp: gppTCF("tcfeuv2", {
      CmpId: 10, CmpVersion: 1, VendorListVersion: 100, PolicyVersion: 4,
      PurposeConsents: bits(24, purposes), VendorConsents: vendors, PublisherRestrictions: ranges,
    }),
  },
  {
    source: "gpp", id: 5, name: "tcfcav1", gpp: gppTCF("tcfcav1", {
      CmpId: 10, CmpVersion: 1, VendorListVersion: 100,
      PurposesExpressConsent: bits(24, purposes), PurposesImpliedConsent: bits(24, [5, 6]),
      VendorExpressConsent: vendors, VendorImpliedConsent: [8], PubRestrictions: ranges,
    }),
  },
].map((v) => ({ ...v, purposes, vendors, restrictions }));

const tcfca = (() => {
  const C = gpp.TcfCaV1;
  const seg = new C().initializeSegments()[0];
  const fields = seg.initializeFields();
  return seg.getFieldNames().map((n) => {
    const f = fields.get(n);
    const t = f.constructor.name;
    if (t === "EncodableFixedInteger") return { name: n, bits: f.bitStringLength, count: 1 };
    if (t === "EncodableDatetime") return { name: n, bits: 36, count: 1 };
    if (t === "EncodableFixedString") return { name: n, bits: 6, count: f.stringLength };
    if (t === "EncodableBoolean") return { name: n, bits: 1, count: 1 };
    if (t === "EncodableFixedBitfield") return { name: n, bits: 1, count: f.numElements };
    return { name: n, type: t };
  });
})();

process.stdout.write(JSON.stringify({ layouts: usClasses.map(layout), tcfcav1: tcfca, us: [...us, ...usp], tcf }, null, 1) + "\n");
