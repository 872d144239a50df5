"""A shipped table of common English given names and their nicknames.

Two names of one group count as agreement for a comparator with ``nicknames: true``: ``bob`` and
``robert``, ``peggy`` and ``margaret``. A name may sit in several groups (``chris``, ``sam``,
``alex``); two names agree when they share any group. Names are stored normalised (casefolded,
without accents), the form :func:`~mdhub.domain.matching.normalization.normalize_text` produces.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["NICKNAME_GROUPS", "nickname_groups"]

NICKNAME_GROUPS: tuple[tuple[str, ...], ...] = (
    # the first name of a group names it
    ("abigail", "abby", "abbie", "gail"),
    ("albert", "al", "bert", "bertie"),
    ("alexander", "alex", "alec", "al", "sandy", "xander", "lex"),
    ("alexandra", "alex", "alexa", "sandy", "lexi", "ally"),
    ("alfred", "alf", "alfie", "fred", "freddie"),
    ("andrew", "andy", "drew", "andi"),
    ("angela", "angie"),
    ("anne", "ann", "anna", "annie", "nan", "nancy", "hannah"),
    ("anthony", "tony", "ant", "antony"),
    ("arthur", "art", "artie"),
    ("augustus", "gus", "august"),
    ("barbara", "barb", "barbie", "babs"),
    ("benjamin", "ben", "benny", "benji"),
    ("caroline", "carol", "carrie", "caro", "carolyn"),
    ("cassandra", "cass", "cassie", "sandy"),
    ("charles", "charlie", "chuck", "chas", "chaz", "carl"),
    ("charlotte", "charlie", "lottie", "lotte"),
    ("christine", "christina", "chris", "chrissie", "chrissy", "tina", "kristine", "kristina"),
    ("christopher", "chris", "kit", "topher"),
    ("cynthia", "cindy"),
    ("daniel", "dan", "danny", "dani"),
    ("david", "dave", "davy", "davey"),
    ("deborah", "debra", "deb", "debbie", "debby"),
    ("donald", "don", "donnie"),
    ("dorothy", "dot", "dotty", "dottie", "dolly"),
    ("douglas", "doug"),
    ("edward", "ed", "eddie", "eddy", "ted", "teddy", "ned"),
    ("eleanor", "ellie", "elly", "nell", "nellie", "nora"),
    ("elizabeth", "elisabeth", "liz", "lizzie", "lizzy", "beth", "betty", "betsy", "eliza"),
    ("elizabeth", "libby", "bess", "bessie", "lisa", "elsie"),
    ("emily", "em", "emmy", "millie"),
    ("ernest", "ernie"),
    ("eugene", "gene"),
    ("evelyn", "evie", "eve"),
    ("frances", "fran", "frankie", "fanny"),
    ("francis", "frank", "frankie", "fran"),
    ("frederick", "frederic", "fred", "freddie", "freddy", "fritz"),
    ("gabriel", "gabe"),
    ("gabrielle", "gabriella", "gabby", "gaby", "gabi"),
    ("gerald", "gerry", "jerry"),
    ("gregory", "greg", "gregg"),
    ("harold", "harry", "hal"),
    ("helen", "nell", "nellie", "lena"),
    ("henry", "harry", "hank", "hal", "hen"),
    ("herbert", "herb", "bert"),
    ("howard", "howie"),
    ("isabel", "isabelle", "isabella", "izzy", "bella", "belle"),
    ("jacob", "jakob", "jake"),
    ("jacqueline", "jackie", "jacky"),
    ("james", "jim", "jimmy", "jamie", "jem"),
    ("jeffrey", "geoffrey", "jeff", "geoff"),
    ("jennifer", "jen", "jenn", "jenny"),
    ("jerome", "jerry"),
    ("jessica", "jess", "jessie"),
    ("joanna", "johanna", "joanne", "jo", "jojo"),
    ("john", "jon", "johnny", "johnnie", "jack", "jackie"),
    ("jonathan", "johnathan", "jon", "jonny", "johnny"),
    ("joseph", "joe", "joey", "jos"),
    ("josephine", "jo", "josie", "jody"),
    ("joshua", "josh"),
    ("judith", "judy", "judi"),
    ("katherine", "catherine", "kathryn", "katharine", "kate", "katie", "katy", "kathy"),
    ("katherine", "cathy", "kat", "cat", "kit", "kitty"),
    ("kenneth", "ken", "kenny"),
    ("kimberly", "kimberley", "kim", "kimmy"),
    ("lawrence", "laurence", "larry", "laurie"),
    ("leonard", "leo", "len", "lenny"),
    ("louis", "lewis", "lou", "louie"),
    ("madeline", "madeleine", "madelyn", "maddie", "maddy"),
    ("margaret", "maggie", "meg", "peggy", "marge", "margie", "greta", "madge", "gretchen"),
    ("mary", "molly", "polly", "mae", "mamie", "mimi"),
    ("matilda", "mathilda", "tilly", "tilda", "mattie"),
    ("matthew", "matt", "matty"),
    ("michael", "mike", "mikey", "mick", "mickey"),
    ("nathaniel", "nathan", "nate", "nat"),
    ("natalie", "nat", "natty"),
    ("nicholas", "nick", "nicky", "nico", "nic"),
    ("oliver", "ollie", "olly"),
    ("olivia", "liv", "livvy", "ollie"),
    ("pamela", "pam"),
    ("patricia", "pat", "patty", "patsy", "trish", "tricia"),
    ("patrick", "pat", "paddy"),
    ("peter", "pete", "petey"),
    ("philip", "phillip", "phil", "pip"),
    ("raymond", "ray"),
    ("rebecca", "becky", "becca", "becki"),
    ("richard", "rick", "ricky", "rich", "richie", "dick", "dicky"),
    ("robert", "rob", "robbie", "robby", "bob", "bobby", "bert"),
    ("ronald", "ron", "ronnie"),
    ("russell", "russ", "rusty"),
    ("samantha", "sam", "sammy", "sami"),
    ("samuel", "sam", "sammy"),
    ("sarah", "sara", "sally", "sadie"),
    ("stanley", "stan"),
    ("stephanie", "steph", "stevie"),
    ("stephen", "steven", "steve", "stevie"),
    ("susan", "susanna", "suzanne", "sue", "susie", "suzy"),
    ("teresa", "theresa", "terry", "tess", "tessa"),
    ("terence", "terrence", "terry"),
    ("theodore", "theo", "ted", "teddy"),
    ("thomas", "tom", "tommy", "thom"),
    ("timothy", "tim", "timmy"),
    ("valerie", "val"),
    ("veronica", "ronnie", "roni"),
    ("victoria", "vicky", "vicki", "tori"),
    ("vincent", "vince", "vinny"),
    ("virginia", "ginny", "ginger"),
    ("walter", "walt", "wally"),
    ("william", "will", "wil", "willie", "willy", "bill", "billy", "liam"),
    ("zachary", "zach", "zack", "zac"),
)


def _index(groups: tuple[tuple[str, ...], ...]) -> Mapping[str, list[str]]:
    found: dict[str, set[str]] = {}
    for group in groups:
        for name in group:
            found.setdefault(name, set()).add(group[0])
    return {name: sorted(canonical) for name, canonical in found.items()}


_GROUPS_OF = _index(NICKNAME_GROUPS)


def nickname_groups(name: str) -> list[str] | None:
    """Return the (sorted) groups of a normalised given name, or None if the table lacks it.

    A name of several words (``mary ann``) that is not in the table is looked up by its first word.
    """
    groups = _GROUPS_OF.get(name)
    if groups is None and " " in name:
        groups = _GROUPS_OF.get(name.split(" ", 1)[0])
    return list(groups) if groups is not None else None
