"""The vocabulary of the synthetic economic graph: title families, skills, industries, regions.

Titles come in families whose members are near each other in meaning (a deep model should learn to put
"chef", "sous chef" and "cook" together and far from "recruiter" or "legal counsel"). Each family owns
four skills; sixteen generic skills are shared by everyone. With 12 families that is exactly 64 skills,
so a member's or a job's skills fit one ``uint64`` bit mask and overlaps are computed with bit counts.
"""

from __future__ import annotations

# family -> (home industry, [(title, base seniority 1..6)], four family skills)
FAMILIES: dict[str, tuple[str, list[tuple[str, int]], list[str]]] = {
    "culinary": (
        "hospitality",
        [("cook", 1), ("chef de partie", 2), ("sous chef", 3), ("chef", 4), ("pastry chef", 3),
         ("kitchen manager", 4)],
        ["french cuisine", "pastry", "menu planning", "food safety"],
    ),
    "recruiting": (
        "staffing",
        [("recruitment coordinator", 1), ("recruiter", 2), ("recruitment specialist", 3),
         ("talent acquisition partner", 4), ("hr consultant", 4), ("head of talent", 5)],
        ["sourcing", "interviewing", "employer branding", "applicant tracking"],
    ),
    "legal": (
        "legal services",
        [("paralegal", 1), ("associate attorney", 2), ("legal counsel", 3), ("senior advisor", 4),
         ("general counsel", 5), ("partner", 6)],
        ["contract law", "litigation", "compliance", "legal research"],
    ),
    "software": (
        "software",
        [("junior developer", 1), ("software engineer", 2), ("backend developer", 3),
         ("frontend developer", 3), ("lead developer", 4), ("engineering manager", 5)],
        ["python", "java", "distributed systems", "cloud infrastructure"],
    ),
    "data": (
        "software",
        [("data analyst", 2), ("data engineer", 3), ("data scientist", 3),
         ("machine learning engineer", 4), ("head of data", 5)],
        ["sql", "statistics", "machine learning", "data visualization"],
    ),
    "sales": (
        "retail",
        [("sales associate", 1), ("business development representative", 2), ("account manager", 3),
         ("account executive", 3), ("sales manager", 4), ("vp of sales", 6)],
        ["negotiation", "crm", "lead generation", "key accounts"],
    ),
    "nursing": (
        "healthcare",
        [("care assistant", 1), ("registered nurse", 2), ("clinical nurse specialist", 4),
         ("nurse practitioner", 4), ("ward manager", 5)],
        ["patient care", "clinical assessment", "medication administration", "triage"],
    ),
    "finance": (
        "finance",
        [("accounts assistant", 1), ("accountant", 2), ("auditor", 3), ("financial analyst", 3),
         ("controller", 5), ("cfo", 6)],
        ["financial reporting", "auditing", "budgeting", "tax"],
    ),
    "design": (
        "marketing & advertising",
        [("junior designer", 1), ("graphic designer", 2), ("ux designer", 3), ("ux researcher", 3),
         ("product designer", 4), ("design director", 5)],
        ["figma", "user research", "visual design", "prototyping"],
    ),
    "logistics": (
        "logistics",
        [("warehouse associate", 1), ("truck driver", 2), ("logistics coordinator", 3),
         ("operations supervisor", 4), ("supply chain manager", 5)],
        ["inventory management", "fleet operations", "procurement", "forklift operation"],
    ),
    "teaching": (
        "education",
        [("teaching assistant", 1), ("tutor", 2), ("teacher", 3), ("lecturer", 4),
         ("head teacher", 5), ("professor", 6)],
        ["curriculum design", "classroom management", "mentoring", "assessment"],
    ),
    "marketing": (
        "marketing & advertising",
        [("marketing assistant", 1), ("seo specialist", 2), ("content strategist", 3),
         ("brand manager", 4), ("marketing manager", 4), ("chief marketing officer", 6)],
        ["seo", "content marketing", "brand strategy", "paid social"],
    ),
}

GENERIC_SKILLS: list[str] = [
    "communication", "leadership", "teamwork", "project management", "excel", "public speaking",
    "problem solving", "time management", "customer service", "english", "spanish", "french",
    "german", "mandarin", "training", "negotiating budgets",
]

INDUSTRIES: list[str] = [
    "hospitality", "staffing", "legal services", "software", "retail", "healthcare", "finance",
    "marketing & advertising", "logistics", "education", "manufacturing", "public sector",
]

# Regions with a Zipf-like popularity (listed most popular first).
REGIONS: list[str] = [
    "london", "new york", "paris", "berlin", "san francisco", "toronto", "bangalore", "singapore",
    "sydney", "sao paulo",
]

SENIORITY_LEVELS: list[str] = ["entry", "junior", "mid", "senior", "manager", "executive"]

# Per-member design vector for member-specific taste (document-scoped job attributes).
TASTE_ATTRIBUTES: list[str] = ["remote", "company_size", "seniority"]

HEADLINE_OPENERS: list[str] = [
    "", "", "", "experienced ", "passionate ", "award-winning ", "certified ", "aspiring ",
    "results-driven ", "bilingual ",
]

COMPANY_WORDS_A: list[str] = [
    "acme", "blue", "nordic", "summit", "harbor", "atlas", "bright", "cedar", "delta", "ember",
    "falcon", "granite", "horizon", "iris", "juniper", "keystone", "lumen", "meridian", "nova",
    "orchid", "pioneer", "quartz", "river", "sterling", "tidal", "unity", "vertex", "willow",
    "zenith", "copper",
]
COMPANY_WORDS_B: list[str] = [
    "labs", "group", "partners", "works", "systems", "kitchens", "health", "logistics", "capital",
    "studio", "academy", "legal", "talent", "digital", "foods", "analytics", "retail", "care",
    "consulting", "ventures",
]
COMPANY_WORDS_C: list[str] = ["", " inc", " ltd", " gmbh", " & co", " global", " international", " sa"]

DESCRIPTION_CLOSERS: list[str] = [
    "Competitive salary and flexible hours.",
    "Join a friendly, fast-growing team.",
    "Great benefits and room to grow.",
    "Start as soon as possible.",
    "Training provided for the right candidate.",
    "We value diversity and inclusion.",
]


def all_titles() -> list[tuple[str, str, int]]:
    """Every title as ``(title, family, base_seniority)``, in a fixed order."""
    return [(t, fam, s) for fam, (_, titles, _) in FAMILIES.items() for t, s in titles]


def all_skills() -> list[str]:
    """The 64 skills in bit order: four per family (family order), then the generic ones."""
    skills = [s for _, _, fam_skills in FAMILIES.values() for s in fam_skills] + GENERIC_SKILLS
    assert len(skills) == 64 and len(set(skills)) == 64
    return skills
