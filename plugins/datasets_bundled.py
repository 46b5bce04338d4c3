"""Data generated in-repo for the recipes' cpu and tiny profiles (no hub at run time).

- ``code_tasks``: MBPP-style small functions; columns ``question``, ``reasoning``,
  ``answer`` (reference code), ``tests`` (assert statements), ``difficulty``, ``domain``.
- ``dilemmas``: a small set of ethical dilemmas (6 scenarios x 6 pressures) with an IDEA-E
  reference trace (Identify, Determine, Explore, Act, Evaluate); columns ``question``,
  ``context``, ``reasoning``, ``answer``, ``difficulty`` (1-3, how much pressure the twist
  adds). The tiny model's tokenizer learns from its text, so the tiny profiles use it.
- ``idea_e_dilemmas``: the set IDEA-E's recipe trains and measures on (ours: the source's
  teacher data is unpublished): 24 scenarios, of which 6 are held out whole (the test split
  never shows a training scenario), each combined with a setting and 0-2 complications (a
  legal duty, a promise, a vulnerable person, ...) that add a principle the trace must
  weigh; ``difficulty`` = 1 + the number of complications, which ``curriculum:`` orders by.
  8,190 distinct train and 2,730 test items.
- ``open_questions``: explanatory questions with Rubrics-as-Rewards items
  (``rubric``: title, criterion, category) and a reference ``reasoning``/``answer``.

Options: ``n`` (default 64; fewer when the templates run out), ``seed`` (0). Train/test splits
are disjoint.
"""

from __future__ import annotations

import random
import zlib

from reasonlab import hookimpl

_FUNCTIONS = [
    ("add_{k}", "Write a Python function add_{k}(x) that returns x plus {k}.",
     "def add_{k}(x):\n    return x + {k}", ["assert add_{k}(1) == {k1}", "assert add_{k}(-{k}) == 0"], 1,
     "Adding {k} to the input is all that is needed: return x + {k}."),
    ("times_{k}", "Write a Python function times_{k}(x) that returns x multiplied by {k}.",
     "def times_{k}(x):\n    return x * {k}", ["assert times_{k}(2) == {k2}", "assert times_{k}(0) == 0"], 1,
     "Multiply the input by {k}: return x * {k}."),
    ("count_{c}", "Write a Python function count_{c}(s) that counts how many times the letter '{c}' occurs in s.",
     "def count_{c}(s):\n    return s.count('{c}')", ["assert count_{c}('{c}{c}-') == 2", "assert count_{c}('') == 0"], 2,
     "str.count counts non-overlapping occurrences, which for one letter is every occurrence."),
    ("largest_{k}", "Write a Python function largest_{k}(xs) that returns the largest element of xs plus {k}.",
     "def largest_{k}(xs):\n    return max(xs) + {k}", ["assert largest_{k}([1, 5, 3]) == {k5}", "assert largest_{k}([-2]) == {km2}"], 2,
     "max(xs) finds the largest element; then add {k}."),
    ("sum_to_{k}", "Write a Python function sum_to_{k}() that returns the sum of the integers from 1 to {k}.",
     "def sum_to_{k}():\n    return sum(range(1, {k} + 1))", ["assert sum_to_{k}() == {tri}"], 3,
     "range(1, {k} + 1) yields 1..{k}; sum adds them, {tri} in total."),
    ("evens_below_{k}", "Write a Python function evens_below_{k}() that returns the list of even numbers below {k}.",
     "def evens_below_{k}():\n    return [i for i in range({k}) if i % 2 == 0]", ["assert evens_below_{k}()[:2] == [0, 2]",
     "assert len(evens_below_{k}()) == {halfk}"], 3, "Keep i in range({k}) when i % 2 == 0."),
]

_DILEMMAS = [
    ("a nurse", "a patient asks her not to tell his family about his terminal diagnosis", "patient confidentiality",
     "the family's wish to prepare", "keep the diagnosis confidential and encourage the patient to talk to his family"),
    ("an engineer", "her manager asks her to sign off a bridge inspection she did not finish", "public safety",
     "loyalty to her employer", "refuse to sign until the inspection is complete"),
    ("a student", "he sees his best friend cheating in a final exam", "fairness to other students",
     "loyalty to a friend", "talk to the friend first and report it if it continues"),
    ("a journalist", "a source offers leaked medical records that prove a politician lied", "the public's right to know",
     "the privacy of the people in the records", "report the lie without publishing the private records"),
    ("a shop owner", "a hungry child steals bread from her shop", "the rule against theft", "compassion for the child",
     "let the child keep the bread and connect the family with a food bank"),
    ("a doctor", "there is one ventilator and two patients who need it", "saving the most life-years",
     "treating every patient equally", "follow the hospital's triage protocol openly and document the decision"),
]
_MORE_DILEMMAS = [
    ("a teacher", "a pupil confides that a classmate is being bullied but begs her not to say who told her",
     "protecting the bullied classmate", "the trust of the pupil who spoke up",
     "stop the bullying without naming the pupil who reported it"),
    ("an accountant", "she finds that her client understated income on a tax return", "honesty to the tax authority",
     "duty to the client", "ask the client to correct the return and withdraw if he refuses"),
    ("a software developer", "his team ships a feature that quietly collects more user data than the privacy policy says",
     "users' privacy", "the team's release schedule", "raise it with the team and block the release until the policy and the feature agree"),
    ("a landlord", "a long-time tenant has lost his job and cannot pay the rent this month", "keeping agreements",
     "compassion for a person in hardship", "agree a payment plan and point the tenant to rent assistance"),
    ("a pharmacist", "a regular customer asks for a refill of a prescription that expired yesterday",
     "following prescription rules", "the customer's health", "give an emergency supply if the law allows it and call the doctor"),
    ("a referee", "she realises after the whistle that a goal she allowed was offside", "fairness of the game",
     "the authority of the referee's decision", "report the error to the match officials as the rules provide"),
    ("a scientist", "her new results contradict a paper she published last year", "scientific honesty",
     "her reputation", "publish a correction and share the new data"),
    ("a manager", "a valued employee's mistake cost a client, and the client demands that he be fired",
     "loyalty to the employee", "the client's trust", "take responsibility as a team, fix the harm and keep the employee with a plan to improve"),
    ("a lawyer", "her client tells her in confidence that he plans to hurt someone", "client confidentiality",
     "preventing serious harm", "warn the people at risk within what the professional rules allow"),
    ("a volunteer", "donated food is past its best-before date but still safe", "avoiding waste",
     "the dignity of the people served", "hand it out with honest labels and let people choose"),
    ("a police officer", "a friend is stopped for driving slightly over the speed limit", "equal treatment under the law",
     "friendship", "handle the stop exactly as for a stranger"),
    ("a museum curator", "an artefact in the collection was taken from its country during a war", "respect for the people it was taken from",
     "the museum's duty to its collection", "open talks on returning the artefact"),
    ("a coach", "his best player asks to skip practice to care for a sick parent before the final", "the team's chances",
     "care for the player's family", "let the player go and plan the final without relying on extra practice"),
    ("a researcher", "a participant in her study wants to withdraw after the data was analysed", "the participant's consent",
     "the value of complete data", "remove the participant's data as the consent form promised"),
    ("a city planner", "a new park would displace a small market that poor families rely on", "public benefit",
     "the livelihood of the market's traders", "redesign the park to keep or relocate the market with its traders' agreement"),
    ("a translator", "a speaker she translates for says something insulting to the other side", "faithful translation",
     "keeping the peace in the talks", "translate faithfully and tell the speaker how it may be received"),
    ("a veterinarian", "an owner cannot afford the surgery that would save her dog", "the animal's welfare",
     "the owner's means", "offer a payment plan or a cheaper treatment and explain every option honestly"),
    ("a bank clerk", "an elderly customer wants to withdraw all his savings for someone he met online",
     "the customer's freedom to use his money", "protecting him from a likely scam",
     "explain the warning signs of the scam and follow the bank's fraud procedure before paying out"),
]
_COMPLICATIONS = [  # (what is added to the case, the principle it brings in, what the action must add, what it answers)
    ("A law requires cases like this to be reported.", "the legal duty to report",
     "check what the law requires and comply with it", "meets the legal duty"),
    ("A promise of secrecy was made earlier.", "keeping a promise",
     "explain openly why the promise cannot fully hold", "is honest about the broken promise"),
    ("A child could be harmed by the outcome.", "protecting the vulnerable",
     "make the child's safety the first concern", "keeps the child safe"),
    ("The decision-maker's own job depends on the outcome.", "integrity against self-interest",
     "declare the conflict of interest", "does not let self-interest decide"),
    ("Some of the facts are still uncertain.", "acting under uncertainty",
     "verify the key facts before acting where time allows", "rests on checked facts"),
    ("The local community is divided about what is right.", "trust within the community",
     "explain the decision to the people affected", "keeps the community's trust"),
    ("A colleague is also involved and asks everyone to stay silent.", "honesty among colleagues",
     "talk to the colleague before acting", "treats the colleague fairly"),
    ("The organisation has a written policy on such cases.", "following agreed procedures",
     "follow the written policy or record why it does not fit", "respects the agreed procedure"),
]
_SETTINGS = ["", "in a small town", "during a crisis", "on the first week in the job", "with a deadline tomorrow",
             "while everyone is watching", "after a similar case went badly"]
_TWISTS = ["in a small town", "during a crisis", "on her first week in the job", "with a deadline tomorrow",
           "while everyone is watching", "after a similar case went badly"]
_TWIST_PRESSURE = dict(zip(_TWISTS, [1, 3, 1, 2, 2, 3]))  # dilemmas' difficulty: how hard the twist presses

_TOPICS = [
    ("why the sky is blue", "Rayleigh scattering", "shorter blue wavelengths scatter more than red",
     "sunsets look red because light crosses more air"),
    ("why ice floats on water", "density", "ice is less dense than liquid water because of its hydrogen-bond lattice",
     "lakes freeze from the top, protecting life below"),
    ("how vaccines protect people", "immune memory", "they train the immune system to recognise a pathogen",
     "herd immunity protects people who cannot be vaccinated"),
    ("why the seasons change", "axial tilt", "Earth's tilt changes how directly sunlight hits each hemisphere",
     "it is not caused by the distance to the Sun"),
    ("how compound interest works", "exponential growth", "interest is earned on previous interest",
     "small rate differences grow large over decades"),
    ("why we see the phases of the Moon", "relative positions", "we see different parts of the sunlit half of the Moon",
     "it is not Earth's shadow, which causes eclipses"),
]
_AUDIENCES = ["to a ten-year-old", "in two sentences", "to a history student", "for a science quiz", "to a friend",
              "as simply as possible"]


MAX_ROWS = 100_000  # far above what any bundled generator can make distinct


def _split_rng(seed: int, split: str, salt: str) -> random.Random:
    return random.Random(seed * 7919 + zlib.crc32(f"{salt}/{split}".encode()))


def _in_split(key: str, split: str) -> bool:
    return (zlib.crc32(key.encode()) % 4 == 0) == (split == "test")


def _unique_rows(n: int, split: str, draw, partition: bool = True) -> list[dict]:
    """Up to ``n`` rows from ``draw() -> (key, row)``: distinct keys, all in ``split``'s hash
    partition (unless ``partition=False``: the generator splits by scenario itself)."""
    rows, seen = [], set()
    for _ in range(n * 200):
        if len(rows) == n:
            break
        key, row = draw()
        if key in seen or (partition and not _in_split(key, split)):
            continue
        seen.add(key)
        rows.append(row)
    return rows


def code_tasks(n: int = 64, seed: int = 0, split: str = "train") -> list[dict]:
    rng = _split_rng(seed, split, "code")

    def draw():
        name, question, code, tests, difficulty, why = rng.choice(_FUNCTIONS)
        k, c = rng.randint(4, 40), rng.choice("abcdefgxyz")
        values = {"k": k, "c": c, "k1": k + 1, "k2": 2 * k, "k5": 5 + k, "km2": k - 2, "tri": k * (k + 1) // 2,
                  "halfk": (k + 1) // 2}
        return name.format(**values), {
            "question": question.format(**values), "reasoning": why.format(**values), "answer": code.format(**values),
            "tests": [t.format(**values) for t in tests], "difficulty": difficulty, "domain": "code"}

    return _unique_rows(n, split, draw)


def dilemmas(n: int = 64, seed: int = 0, split: str = "train") -> list[dict]:
    rng = _split_rng(seed, split, "dilemma")

    def draw():
        who, situation, principle_a, principle_b, action = rng.choice(_DILEMMAS)
        twist = rng.choice(_TWISTS)
        question = f"What should {who} do when {situation} {twist}?"
        trace = (f"Identify: {who} faces a case where {situation} {twist}. "
                 f"Determine: {principle_a} conflicts with {principle_b}. "
                 f"Explore: acting only on {principle_a} or only on {principle_b} each harms someone; a middle path exists. "
                 f"Act: {action}. "
                 f"Evaluate: this protects {principle_a} while respecting {principle_b} as far as possible.")
        return question, {"question": question, "context": f"{principle_a}; {principle_b}", "reasoning": trace,
                          "answer": action, "difficulty": _TWIST_PRESSURE[twist], "domain": "ethics"}

    return _unique_rows(n, split, draw)


def _idea_e_scenarios(split: str) -> list[tuple]:
    """Every fourth scenario is held out whole: test items never share a scenario with training."""
    scenarios = _DILEMMAS + _MORE_DILEMMAS
    return [s for i, s in enumerate(scenarios) if (i % 4 == 3) == (split == "test")]


def idea_e_dilemmas(n: int = 64, seed: int = 0, split: str = "train") -> list[dict]:
    rng = _split_rng(seed, split, "idea_e")
    scenarios = _idea_e_scenarios(split)

    def draw():
        who, situation, principle_a, principle_b, action = rng.choice(scenarios)
        setting = rng.choice(_SETTINGS)
        added = rng.sample(_COMPLICATIONS, rng.randint(0, 2))
        case = f"{situation[0].upper()}{situation[1:]}{' ' + setting if setting else ''}."
        question = " ".join([f"What should {who} do?", case, *(c[0] for c in added)])
        principles = [principle_a, principle_b, *(c[1] for c in added)]
        facts = "; ".join([f"{who} faces a case where {situation}{' ' + setting if setting else ''}",
                           *(c[0].rstrip(".").lower() for c in added)])
        steps = "; ".join([action, *(c[2] for c in added)])
        outcomes = ", ".join([f"protects {principle_a} while respecting {principle_b} as far as possible",
                              *(c[3] for c in added)])
        trace = (f"Identify: {facts}. "
                 f"Determine: {principle_a} conflicts with {' and with '.join(principles[1:])}. "
                 f"Explore: acting only on {principle_a} or only on {principle_b} each harms someone; "
                 f"a path that weighs {', '.join(principles)} exists. "
                 f"Act: {steps}. "
                 f"Evaluate: this {outcomes}.")
        return question, {"question": question, "context": "; ".join(principles), "reasoning": trace,
                          "answer": steps, "difficulty": 1 + len(added), "domain": "ethics",
                          "scenario": f"{who}: {situation}"}

    return _unique_rows(n, split, draw, partition=False)


def open_questions(n: int = 64, seed: int = 0, split: str = "train") -> list[dict]:
    rng = _split_rng(seed, split, "open")

    def draw():
        topic, concept, mechanism, consequence = rng.choice(_TOPICS)
        audience = rng.choice(_AUDIENCES)
        question = f"Explain {topic} {audience}."
        rubric = [
            {"title": "Names the concept", "criterion": f"The answer names {concept}.", "category": "Essential"},
            {"title": "Explains the mechanism", "criterion": f"It explains that {mechanism}.", "category": "Essential"},
            {"title": "Gives a consequence", "criterion": f"It mentions that {consequence}.", "category": "Important"},
            {"title": "Fits the audience", "criterion": f"It is pitched {audience}.", "category": "Optional"},
            {"title": "Avoids false claims", "criterion": "It avoids stating anything false.", "category": "Pitfall"},
        ]
        return question, {"question": question, "reasoning": f"The key idea is {concept}: {mechanism}. So {consequence}.",
                          "answer": f"Because of {concept}: {mechanism}.", "rubric": rubric, "difficulty": 2,
                          "domain": "science"}

    return _unique_rows(n, split, draw)


def _loader(generate):
    from reasonlab.data import check_options, require_rows

    def load(arg, spec):
        return require_rows(generate(split=spec.split, **spec.options), spec.options.get("n", 64), spec)

    def check(arg, spec):
        check_options(spec, {"n": (1, MAX_ROWS), "seed": (0, 2**63 - 1)})
        load(arg, spec)  # generating is cheap: an impossible n is refused here, before anything trains

    load.check = check
    load.columns = lambda arg, spec: set(generate(n=1, seed=spec.options.get("seed", 0), split=spec.split)[0])
    return load


@hookimpl
def register_datasets(register):
    register("code_tasks", _loader(code_tasks))
    register("dilemmas", _loader(dilemmas))
    register("idea_e_dilemmas", _loader(idea_e_dilemmas))
    register("open_questions", _loader(open_questions))
