"""Every rate, share and timing the synthetic clinic is drawn from, in one place.

Each constant names where it comes from, with the source keys of
`shared/reference/clinical.md` section 11 (S1, S12, ...), "report A/B" for the two
source reports summarised in `shared/reference/seeds.md`, or "[design]" where it is our
own choice (a plausible value no source gives, or a deliberate feature of the test data).
Times are in days unless the name says months or years.
"""

from __future__ import annotations

from datetime import date

MONTH = 30.4375  # days in an average month (365.25 / 12)
YEAR = 365.25

# --- cohort -------------------------------------------------------------------------
FEMALE_SHARE = 0.70  # [design] ~70% women, the usual RRMS sex ratio
NATALIZUMAB_ONLY_SHARE = 0.05  # [design] still on natalizumab, never given alemtuzumab
AGE_AT_INDEX_YEARS = (25.0, 50.0)  # [design] age at first alemtuzumab (adults, S4 indication)
DISEASE_YEARS_AT_INDEX = (3.0, 15.0)  # [design] MS onset this long before the index date
MIN_AGE_AT_ONSET_YEARS = 16.0  # [design]
SPMS_SHARE = 0.07  # [design] active SPMS is a relapsing form (S1, S2); the rest RRMS
BIRTH_DATE_PRECISION = (0.80, 0.15, 0.05)  # [design] full date, YYYY-MM, YYYY (contract 1)
FIRST_INFUSION = (date(2010, 1, 1), date(2015, 10, 31))  # [design] spread over the cohort
FIRST_INFUSION_RAMP = 3.0  # [design] density rises 1 -> 4 over the range: use grew after
# licensing (named-patient use before, report B; NICE TA312 in 2014, S22)
NATALIZUMAB_ONLY_START = (date(2008, 1, 1), date(2015, 6, 30))  # [design]
NATALIZUMAB_APPROVED = date(2006, 6, 27)  # [design] EU approval, no earlier exposure

# --- prior therapies (report B: most came from natalizumab) -------------------------------
PRIOR_NATALIZUMAB_SHARE = 0.80  # report B (all 11 came from natalizumab); [design] not all
# stop reasons of natalizumab before alemtuzumab: report B 8 failure, 3 allergy; pml_risk
# for JCV-positive long-term patients (S75, S89)
NATALIZUMAB_STOP = {"inefficacy": 0.60, "allergy": 0.15, "pml_risk": 0.20, "patient_choice": 0.05}
# natalizumab exposure (days) by stop reason: allergy after a few infusions; PML risk
# rises after 2 years / 24 infusions (S75, S76)
NATALIZUMAB_DAYS = {
    "inefficacy": (365, 1460),
    "allergy": (28, 150),
    "pml_risk": (730, 2190),
    "patient_choice": (180, 1095),
}
WASHOUT_AFTER_NATALIZUMAB = (28, 100)  # S88 median 70 days (41-99) before alemtuzumab
# last therapy before alemtuzumab when it was not natalizumab; fingolimod breakthrough S60
OTHER_LAST_THERAPY = {
    "fingolimod": 0.45,
    "dimethyl_fumarate": 0.20,
    "interferon_beta_1a": 0.20,
    "glatiramer_acetate": 0.15,
}
OTHER_LAST_STOP = {"inefficacy": 0.80, "adverse_event": 0.20}  # [design]
WASHOUT_AFTER_OTHER = (30, 120)  # [design]
LAST_OTHER_DAYS = (365, 1095)  # [design]
# earlier therapies, oldest first in time; how many a patient had (0-3)
EARLIER_THERAPY_COUNT = (0.15, 0.45, 0.30, 0.10)  # [design] "many earlier therapies" (report A)
EARLIER_THERAPY = {
    "interferon_beta_1a": 0.35,
    "interferon_beta_1b": 0.15,
    "glatiramer_acetate": 0.30,
    "fingolimod": 0.08,
    "teriflunomide": 0.04,
    "dimethyl_fumarate": 0.05,
    "mitoxantrone": 0.03,
}
EARLIER_STOP = {
    "inefficacy": 0.50,
    "adverse_event": 0.25,
    "patient_choice": 0.12,
    "pregnancy": 0.05,
    "other": 0.08,
}  # [design]
EARLIER_THERAPY_DAYS = (180, 1460)  # [design]
GAP_BETWEEN_THERAPIES = (0, 120)  # [design]
# a drug drawn before its approval becomes the fallback ([design], EU approval dates)
APPROVED_FROM = {
    "fingolimod": (date(2011, 3, 17), "interferon_beta_1a"),
    "teriflunomide": (date(2013, 8, 26), "interferon_beta_1b"),
    "dimethyl_fumarate": (date(2014, 1, 30), "glatiramer_acetate"),
}
# dose per administration and its UCUM unit ([design] usual label doses)
DOSE = {
    "alemtuzumab": (12.0, "mg"),  # S2, S3, S4: 12 mg/day
    "methylprednisolone": (1000.0, "mg"),  # S2, S3: premedication on the first 3 days
    "natalizumab": (300.0, "mg"),
    "interferon_beta_1a": (44.0, "ug"),
    "interferon_beta_1b": (250.0, "ug"),
    "glatiramer_acetate": (20.0, "mg"),
    "fingolimod": (0.5, "mg"),
    "dimethyl_fumarate": (240.0, "mg"),
    "teriflunomide": (14.0, "mg"),
    "mitoxantrone": (12.0, "mg/m2"),
    "rituximab": (1000.0, "mg"),  # report A: B-cell depletion after plasma exchange
}

# --- alemtuzumab courses ------------------------------------------------------------------
COURSE_DAYS = (5, 3, 3)  # S2, S3, S4: 5 consecutive days, then 3, then 3
PREMEDICATION_DAYS = 3  # S2, S3: methylprednisolone on the first 3 days of every course
COURSE2_AFTER_COURSE1_END = (350, 385)  # S2-S4: course 2 12 months after course 1
COURSE3_SHARE = 0.15  # S55, S13: 60-69% needed no extra course over 5 years; [design] 15%
COURSE3_AFTER_COURSE2_END = (365, 900)  # S2, S4: >= 12 months after the previous course
MONITORING_DAYS = 1461  # S1, S2, S4: 48 months after the last infusion of the last course

# --- lab monitoring -------------------------------------------------------------------------
BASELINE_BEFORE_COURSE = (3, 25)  # S1, S21: baseline tests within 30 days before a course
VISIT_JITTER = 3  # [design] +- days around each monthly visit
QUARTERLY_EVERY = 3  # S1, S2: thyroid function every 3 months
# liver tests (ALT, AST, bilirubin) are drawn monthly with the blood count: the EU package
# leaflet asks for them monthly (protocols/alemtuzumab.yaml, LEM-EU-PL)
TPO_EVERY = 6  # [design] TPO antibodies every 6 months ...
TPO_SHARE = 0.6  # [design] ... in this share of those visits
FREE_T4_SHARE = 0.35  # [design] free T4 with a normal-looking TSH
JCV_EVERY = 182  # S84: anti-JCV index about every 6 months on natalizumab
JCV_BEFORE_NATALIZUMAB = (14, 150)  # [design] a baseline index before the first infusion
MRI_BEFORE_NATALIZUMAB = (7, 80)  # [design] a baseline scan before the first infusion
RESULT_MISSING = 0.05  # [design] results (a whole panel: CBC, liver, ...) missed at random
GAP_PATIENT_SHARE = 0.05  # [design] patients with a stretch of missed monthly visits
GAP_START_MONTHS = (3, 30)  # [design] after course 1
GAP_MONTHS = (3, 8)  # [design]
COUNT_IN_CELLS_PER_UL = 0.10  # [design] count results reported in cells/uL (x1000)
COUNT_SPELLED_10_3_UL = 0.05  # [design] counts in 10*3/uL (same number, other spelling)
CREATININE_IN_MG_DL = 0.10  # [design] creatinine in mg/dL (/88.42, S27)
TSH_SPELLED_MIU_L = 0.30  # [design] "mIU/L" instead of UCUM "m[IU]/L"
JCV_WITHOUT_UNIT = 0.20  # [design] the index is dimensionless; unit often left empty
WITH_REFERENCE_RANGE = 0.50  # [design] results that carry the lab's own range
# Every monthly urinalysis has microscopy (urine_rbc, the urine cell count both labels ask
# for); patients at dipstick sites have their urine dip-tested too (urine_blood, text).
URINE_DIPSTICK_SHARE = 0.5  # [design] patients whose urine is also tested by strip
URINE_MICROSCOPY_NOT_SENT = 0.03  # [design] strip-tested visits whose sample never went
# for microscopy (what REN-DIPSTICK catches when the strip shows blood)
# The urine protein:creatinine ratio (upcr) is drawn once, at the baseline visit before
# course 1 (S1, US label: a baseline before the first course only).
CREATININE_PER_MG_DL = 88.42  # S27 (admiral compute_kidney)

# lab-typical reference ranges in canonical units, two laboratories ([design], clinical.md
# 5.4 indicative ranges: S16 lymphocyte LLN 1.0, S26 platelets 150, S42/S43 TSH 0.4-4.0)
REFERENCE_RANGES: dict[str, tuple[tuple[float | None, float | None], ...]] = {
    "lymphocytes": ((1.0, 4.0), (1.1, 3.5)),
    "leukocytes": ((4.0, 11.0), (3.8, 10.5)),
    "neutrophils": ((1.5, 7.5), (1.5, 7.0)),
    "platelets": ((150.0, 400.0), (140.0, 400.0)),
    "tsh": ((0.4, 4.0), (0.27, 4.2)),
    "free_t4": ((10.0, 22.0), (12.0, 22.0)),
    "tpo_ab": ((None, 34.0), (None, 34.0)),
    "alt": ((None, 40.0), (None, 35.0)),
    "ast": ((None, 40.0), (None, 35.0)),
    "bilirubin": ((None, 21.0), (None, 17.0)),
    "urine_rbc": ((0.0, 3.0), (0.0, 2.0)),
    "urine_protein": ((None, 0.15), (None, 0.14)),
    "upcr": ((None, 15.0), (None, 15.0)),  # mg/mmol, clinical.md 5.4
}
# creatinine ranges by sex (female, male), umol/L and mg/dL (clinical.md 5.4, S27)
CREATININE_RANGES_UMOL = (((45.0, 90.0), (60.0, 110.0)), ((49.0, 90.0), (64.0, 104.0)))
CREATININE_RANGES_MG_DL = (((0.51, 1.02), (0.68, 1.24)), ((0.55, 1.02), (0.72, 1.18)))

# --- lymphocyte, leukocyte, neutrophil kinetics ---------------------------------------------
LYMPHOCYTE_BASELINE = (1.5, 2.5)  # [design] normal adult counts, x10^9/L
LYMPHOCYTE_NADIR = (0.1, 0.3)  # report B: all lymphopenic at 1 month; S44 rapid depletion
LYMPHOCYTE_MONTHS_TO_LLN = 12.7  # S16: geometric mean time to LLN 12.7 months
LYMPHOCYTE_MONTHS_TO_LLN_SIGMA = 0.35  # [design] spread (log scale)
LYMPHOCYTE_LLN = 1.0  # S16
LYMPHOCYTE_PLATEAU_OF_BASELINE = (0.7, 1.0)  # S16: few regain baseline
COUNT_NOISE = 0.08  # [design] visit-to-visit variation (log scale)
OTHER_WHITE_CELLS = (0.5, 0.9)  # [design] monocytes + eosinophils + basophils, x10^9/L
NEUTROPHIL_BASELINE_MEDIAN = 3.6  # [design]
NEUTROPHIL_DIP = 0.2  # S44: transient change, normal within weeks; report B: no neutropenia
NEUTROPHIL_FLOOR = 1.6  # [design] keeps neutropenia to the rare cases below
SEVERE_NEUTROPENIA_SHARE = 0.004  # S1, S4, S7: severe neutropenia, rare, within 2 months
SEVERE_NEUTROPENIA_VALUE = (0.2, 0.9)  # [design] CTCAE grade 3-4
PLATELET_BASELINE = (250.0, 45.0)  # [design] mean, sd x10^9/L
ITP_SHARE = 0.022  # S12: 33/1485 = 2.2%; S1: 2%
ITP_ONSET_MONTHS = (3.0, 48.0)  # S1, S12: any time within 48 months after the last infusion
ITP_SEVERE_SHARE = 0.4  # [design] nadir below 30 x10^9/L in this share ...
ITP_NADIR_SEVERE = (5.0, 30.0)  # [design] x10^9/L
ITP_NADIR_OTHER = (30.0, 95.0)  # [design] ... else 30-95: always below 100
ITP_HALF_RECOVERY_MONTHS = 1.0  # S12: responsive to first-line therapy
# chemistry (canonical units)
CREATININE_BASELINE = ((68.0, 10.0), (85.0, 12.0))  # [design] (mean, sd) female, male
ALT_MEDIAN = (17.0, 24.0)  # [design] female, male, U/L
AST_MEDIAN = 22.0  # [design]
BILIRUBIN_MEDIAN = 8.0  # [design] umol/L
URINE_PROTEIN_MEDIAN = 0.06  # [design] g/L
URINE_RBC_MEAN = 0.7  # [design] per HPF
URINE_RBC_HIGH_SHARE = 0.03  # [design] contamination / menstruation
# The strip answer follows the cell count of the same sample: with 3 or more red cells
# per HPF it shows blood in ~90% (dipstick sensitivity >90%, AUA 2020), without them a
# few false positives (myoglobin, free haemoglobin, oxidising contaminants). [design]
# calibrated so that ~12% of strips show trace or more, as the earlier independent draw.
URINE_BLOOD = {"negative": 0.93, "trace": 0.05, "1+": 0.015, "2+": 0.005, "3+": 0.0}
URINE_BLOOD_HAEMATURIA = {"negative": 0.10, "trace": 0.15, "1+": 0.35, "2+": 0.25, "3+": 0.15}
UPCR_MEDIAN = 7.0  # [design] mg/mmol, healthy adults; clinical.md 5.4: normal below 15
UPCR_SIGMA = 0.4  # [design] log scale: ~3% of baselines above 15 mg/mmol

# --- thyroid autoimmunity -------------------------------------------------------------------
THYROID_SHARE = 0.45  # S1 36.8%, S48 40.7% at 5 y, S49 46.6% over 6 y; S50 41%
THYROID_ONSET_MEDIAN_MONTHS = 24.0  # S50 median 25 months to Graves'; S13 peak in year 3
THYROID_ONSET_SIGMA = 0.5  # [design] log scale
# kinds: Graves' more often than hypothyroidism (S49 39.5% vs 15.4%; S50 77% Graves')
THYROID_KINDS = {"graves": 0.60, "hypothyroid": 0.25, "thyroiditis": 0.15}
TPO_BEFORE_EVENT = {"graves": 0.5, "hypothyroid": 0.8, "thyroiditis": 0.6}  # [design]
TPO_BEFORE_EVENT_DAYS = (60, 270)  # report B: TPO at 3 months, hypothyroid at 9 months
TPO_ONLY_SHARE = 0.06  # [design] antibodies without thyroid dysfunction
TPO_ONLY_MEDIAN_MONTHS = 18.0  # [design] after the first infusion
TPO_NEGATIVE = (3.0, 25.0)  # [design] IU/mL, below the 34 IU/mL cut-off (lab_tests.yaml)
TPO_POSITIVE_MEDIAN = 250.0  # [design] IU/mL, clipped to 40-2000
TPO_AT_BASELINE_SHARE = 0.03  # [design] pre-existing antibodies
GRAVES_DAYS = (180, 450)  # [design] suppressed TSH until treatment works
HYPOTHYROID_DAYS = (90, 240)  # [design] raised TSH until replacement works
THYROIDITIS_PHASE_DAYS = 90  # [design] hyper- then hypothyroid phase
THYROID_SERIOUS = {"graves": 0.15, "hypothyroid": 0.05, "thyroiditis": 0.02}  # S1 5.2%/36.8%
TSH_MEDIAN = 1.6  # [design] mIU/L, inside S42/S43 0.4-4.0
FREE_T4_NORMAL = (12.0, 18.0)  # [design] pmol/L
# (TSH mIU/L, free T4 pmol/L) ranges in each abnormal phase ([design]; contract section 4:
# hyper = TSH below range with free T4 high, hypo = TSH above with free T4 low or normal)
THYROID_LABS = {
    "graves": ((0.005, 0.08), (24.0, 45.0)),
    "hypothyroid": ((5.0, 25.0), (7.0, 13.0)),
    "thyroiditis_hyper": ((0.05, 0.3), (22.5, 30.0)),
    "thyroiditis_hypo": ((4.5, 9.0), (9.0, 12.0)),
}

# --- infections and infusion reactions --------------------------------------------------------
# share of patients with >= 1 infection in follow-up year 1..6 (S51); year 6 onwards as 6
INFECTION_YEARLY = (0.587, 0.526, 0.466, 0.428, 0.409, 0.381)
INFECTION_NATALIZUMAB_YEARLY = 0.35  # [design] natalizumab-only patients
# a patient's infection proneness varies (gamma frailty, shape 1): the yearly shares stay
# those of S51 and the share with any infection over 2 years comes out at S1's 71%
INFECTION_FRAILTY_SHAPE = 1.0  # [design] calibrated to S1 and S51 together
INFECTION_SERIOUS = 0.011  # S1 serious 3% over 2 years; S51 1.0-1.9% a year
INFECTION_TERMS = {
    "Nasopharyngitis": 0.30,
    "Upper respiratory tract infection": 0.14,
    "Urinary tract infection": 0.18,
    "Sinusitis": 0.06,
    "Influenza": 0.04,
    "Oral herpes": 0.08,  # S1 herpes 16%
    "Herpes zoster": 0.05,
    "Oral candidiasis": 0.08,  # S1 fungal 12%
    "Vulvovaginal candidiasis": 0.04,
    "Gastroenteritis": 0.03,
}  # S1 most common: nasopharyngitis 25%, UTI 19%
SERIOUS_INFECTION_TERMS = {
    "Pneumonia": 0.45,
    "Pyelonephritis": 0.15,
    "Herpes zoster": 0.10,
    "Cellulitis": 0.15,
    "Gastroenteritis": 0.12,
    "Listeriosis": 0.03,  # S1, S20
}
INFUSION_REACTION_RECORDED = 0.15  # [design] notable reactions recorded (S24: 90% have one)
INFUSION_REACTION_SERIOUS = 0.02  # S47: serious IAR 2.0% in course 1
INFUSION_REACTION_TERMS = {
    "Infusion related reaction": 0.50,
    "Rash": 0.20,
    "Headache": 0.15,
    "Pyrexia": 0.10,
    "Urticaria": 0.05,
}  # S1: rash, headache, pyrexia most common

# --- relapses, MRI, EDSS --------------------------------------------------------------------
ARR_BEFORE = 2.4  # report B: ARR 2.5 on natalizumab; [design] ~1.9 after the 30-day rule
ARR_BEFORE_SHAPE = 8.0  # [design] gamma shape of the patient's rate (ARR ~1.5-2.5)
ARR_HISTORY = 0.7  # [design] earlier years
HISTORY_YEARS = 5.0  # [design] relapse history kept this far back
ARR_AFTER = 0.2  # S52 0.18 / 0.26, S55 0.14-0.19, S13 0.18-0.23; report B 0.1
ARR_AFTER_SHAPE = 2.0  # [design]
ARR_ON_NATALIZUMAB = 0.25  # [design]
RELAPSE_MIN_APART = 30  # S64: >= 30 days from the previous onset
RELAPSE_UNCONFIRMED = 0.10  # [design]
RELAPSE_SEVERITY = {"mild": 0.35, "moderate": 0.45, "severe": 0.20}  # [design]
RELAPSE_MRI_SHARE = 0.80  # [design] the other ~20% have no MRI (what CNS-MRI catches)
RELAPSE_MRI_WITHIN = (0, 10)  # report A: prompt MRI after an apparent relapse
MRI_BEFORE_FIRST_INFUSION = (7, 150)  # [design]; report B: MRI before alemtuzumab
MRI_BEFORE_NEW_T2 = 0.70  # report B: 8/11 with more lesions
MRI_BEFORE_GD = 0.50  # report B 4/11; [design] about half
MRI_YEARLY_JITTER = 21  # [design]
MRI_CONTRAST = 0.90  # [design]
MRI_AFTER_NEW_T2 = 0.20  # S52: 46-48% new/enlarging T2 over 2 years
MRI_AFTER_GD = 0.08  # S52: 7-9% Gd-enhancing at 24 months
MRI_NATALIZUMAB_NEW_T2 = 0.08  # [design]
MRI_NATALIZUMAB_GD = 0.03  # [design]
MRI_SPINE_SHARE = 0.10  # [design] a spine scan with the baseline brain scan
EDSS_BASELINE = (3.0, 1.2)  # [design] mean, sd; RRMS clipped to 1.0-6.5
EDSS_BASELINE_SPMS = (5.5, 0.8)  # [design] clipped to 4.0-7.5
EDSS_EVERY = (180, 365)  # [design] every 6-12 months
EDSS_STEP = (0.22, 0.60, 0.18)  # S13/S55 more improvement than worsening; P(-0.5, 0, +0.5)
EDSS_STEP_NATALIZUMAB = (0.15, 0.65, 0.20)  # [design]
EDSS_STEP_SPMS = (0.10, 0.60, 0.30)  # [design]

# --- exacerbated CNS inflammation (report A; clinical.md section 7) --------------------------
CNS_SHARE = 0.01  # [design] rare: a handful of published cases (S14, S15, S61)
CNS_MIN_PATIENTS = 50  # [design] at least one case in a clinic of this size
CNS_ONSET = (120, 185)  # S14, S15: <5 to ~6 months after course 1
CNS_VISIBLE_AFTER = 300  # [design] only for patients whose rescue fits before `until`
CNS_MRI_AFTER = (1, 5)  # report A: MRI within days
CNS_GD = (8, 25)  # S14 ~20 new Gd-enhancing lesions, S15 16+
CNS_NEW_T2 = (10, 40)  # S15 up to ~60 new lesions
CNS_RING_MIN = 3  # S14 "many of them ring-enhancing"
CNS_STEROID_AFTER = (1, 3)  # S14: methylprednisolone first, without response
CNS_STEROID_DAYS = 5
CNS_PLEX_AFTER_MRI = (3, 10)  # report A: plasma exchange ...
CNS_PLEX_DAYS = (8, 12)  # [design] 5-7 exchanges
CNS_RITUXIMAB_AFTER_PLEX = (3, 14)  # report A: ... then rituximab
CNS_RITUXIMAB_DAYS = 15  # [design] 2 x 1000 mg two weeks apart
CNS_FOLLOW_UP_MRI = (60, 120)  # report A: lesions receded
CNS_EDSS_RISE = 2.0  # [design] report A: marked worsening; S87 mean rise 3.25 (rebound)
CNS_EDSS_LASTING = 1.0  # [design] partial recovery

# --- natalizumab: anti-JCV antibody index (clinical.md section 9.1) ---------------------------
JCV_POSITIVE_SHARE = 0.55  # [design] about half of patients are seropositive
JCV_INDEX_MEDIAN = 1.2  # [design] positives; S78-S80 thresholds 0.9 / 1.5
JCV_INDEX_SIGMA = 0.7  # [design] log scale
JCV_INDEX_HIGH = (1.6, 3.5)  # S75, S79: index > 1.5 = higher PML risk (pml_risk stoppers)
JCV_INDEX_NEGATIVE = (0.05, 0.19)  # [design] below the positivity cut-off
JCV_INDEX_GROWTH = 0.13  # S83: index of JCV+ patients rises ~13% a year
