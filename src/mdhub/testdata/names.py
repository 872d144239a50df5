"""Made-up but plausible people data: names, nicknames, streets, cities, postal codes, phone areas.

Everything here is plain data, hand-written for the generator; no person in it is real. Postal-code
ranges, phone area codes and city names are real (so the values look and parse like real ones).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COUNTRIES",
    "COUNTRY_WEIGHTS",
    "FIRST_NAMES",
    "LAST_NAMES",
    "NICKNAMES",
    "TAGS",
    "City",
    "Country",
]


@dataclass(frozen=True, slots=True)
class City:
    """A city, its postal codes and its landline area code (without the trunk prefix 0).

    ``postal`` is a numeric range ``(low, high)`` for US/DE/FR/NL codes, or a tuple of GB outward
    codes.
    """

    name: str
    postal: tuple[int, int] | tuple[str, ...]
    area: str
    alias: str | None = None  # another name the city goes by (Munich for München)


@dataclass(frozen=True, slots=True)
class Country:
    """A country: its codes, names, languages, e-mail providers, streets and cities."""

    code: str
    alpha3: str
    name: str
    language: str
    providers: tuple[str, ...]
    street_names: tuple[str, ...]
    street_kinds: tuple[tuple[str, str], ...]  # (full, abbreviated)
    cities: tuple[City, ...]
    mobile_prefixes: tuple[str, ...]
    national_length: int  # digits of a national significant number (the usual length)


# fmt: off
FIRST_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "m": (
            "James", "Robert", "John", "Michael", "William", "David", "Richard", "Joseph",
            "Thomas", "Charles", "Christopher", "Daniel", "Matthew", "Anthony", "Mark", "Steven",
            "Andrew", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Edward", "Ronald",
            "Timothy", "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric",
            "Jonathan", "Stephen", "Benjamin", "Samuel", "Patrick", "Alexander", "Oliver", "Harry",
            "Jack", "Henry", "Theodore", "Liam", "Noah", "Ethan", "Owen", "Callum",
        ),
        "f": (
            "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica",
            "Sarah", "Karen", "Nancy", "Margaret", "Lisa", "Betty", "Dorothy", "Sandra",
            "Ashley", "Kimberly", "Emily", "Donna", "Michelle", "Carol", "Amanda", "Melissa",
            "Deborah", "Stephanie", "Rebecca", "Laura", "Helen", "Katherine", "Victoria",
            "Amelia", "Olivia", "Isla", "Ava", "Sophie", "Charlotte", "Grace", "Chloe", "Abigail",
            "Evelyn", "Hannah", "Rachel", "Samantha", "Natalie", "Megan", "Lucy", "Eleanor",
        ),
    },
    "de": {
        "m": (
            "Peter", "Michael", "Thomas", "Andreas", "Wolfgang", "Klaus", "Jürgen", "Stefan",
            "Christian", "Uwe", "Werner", "Frank", "Bernd", "Matthias", "Markus", "Alexander",
            "Johannes", "Friedrich", "Maximilian", "Lukas", "Jonas", "Felix", "Leon", "Paul",
            "Tobias", "Sebastian", "Florian", "Dieter", "Günter", "Helmut", "Jan", "Tim",
            "Niklas", "Moritz", "Jörg", "Ralf", "Sven", "Dirk", "Karl", "Heinz",
        ),
        "f": (
            "Ursula", "Monika", "Petra", "Sabine", "Renate", "Helga", "Karin", "Brigitte",
            "Ingrid", "Andrea", "Claudia", "Susanne", "Gabriele", "Stefanie", "Katharina",
            "Elisabeth", "Anna", "Julia", "Laura", "Lena", "Lea", "Sophie", "Marie", "Hannah",
            "Johanna", "Franziska", "Christina", "Birgit", "Jutta", "Heike", "Kerstin", "Anja",
            "Sandra", "Nicole", "Melanie", "Jana", "Greta", "Emilia", "Mia", "Charlotte",
        ),
    },
    "fr": {
        "m": (
            "Jean", "Pierre", "Michel", "André", "Philippe", "Alain", "Jacques", "Bernard",
            "Nicolas", "Christophe", "Frédéric", "Laurent", "Stéphane", "Julien", "Sébastien",
            "Alexandre", "Thomas", "Antoine", "Olivier", "François", "Guillaume", "Mathieu",
            "Hugo", "Louis", "Lucas", "Gabriel", "Arthur", "Raphaël", "Théo", "Baptiste",
            "Maxime", "Vincent", "Éric", "Patrick", "Dominique", "Yves", "Rémi", "Clément",
        ),
        "f": (
            "Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise", "Christine",
            "Monique", "Valérie", "Sandrine", "Céline", "Sophie", "Camille", "Julie", "Aurélie",
            "Émilie", "Claire", "Anne", "Chloé", "Manon", "Léa", "Inès", "Louise", "Jade",
            "Élodie", "Amélie", "Margaux", "Pauline", "Hélène", "Brigitte", "Dominique",
            "Juliette", "Charlotte", "Mathilde", "Océane", "Lucie", "Agathe", "Zoé",
        ),
    },
    "nl": {
        "m": (
            "Jan", "Johannes", "Cornelis", "Hendrik", "Pieter", "Gerardus", "Jacobus", "Petrus",
            "Willem", "Wilhelmus", "Adrianus", "Dirk", "Kees", "Henk", "Bram", "Daan", "Sem",
            "Lucas", "Levi", "Finn", "Thijs", "Ruben", "Jeroen", "Sander", "Bas", "Joost",
            "Maarten", "Niels", "Stijn", "Wouter", "Koen", "Martijn", "Erik", "Gerrit", "Arjen",
        ),
        "f": (
            "Maria", "Johanna", "Anna", "Wilhelmina", "Cornelia", "Elisabeth", "Hendrika",
            "Geertruida", "Petronella", "Sanne", "Lotte", "Emma", "Julia", "Tess", "Sophie",
            "Fleur", "Anouk", "Femke", "Lisa", "Eva", "Iris", "Marloes", "Ingrid", "Anke",
            "Marieke", "Annemarie", "Esther", "Linda", "Saskia", "Lieke", "Noor", "Fenna",
            "Roos", "Janneke", "Mirjam",
        ),
    },
}

LAST_NAMES: dict[str, tuple[str, ...]] = {
    "en": (
        "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
        "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White",
        "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
        "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts",
        "Carter", "Phillips", "Evans", "Turner", "Parker", "Collins", "Edwards", "Stewart",
        "Morris", "Murphy", "Cook", "Rogers", "Morgan", "Cooper", "Peterson", "Reed", "Bailey",
        "Bell", "Kelly", "Howard", "Ward", "Cox", "Richardson", "Wood", "Watson", "Brooks",
        "Bennett", "Gray", "Hughes", "Price", "Sanders", "Myers", "Long", "Ross", "Foster",
        "O'Brien", "O'Connor", "McDonald", "MacLeod", "Fitzgerald", "Sullivan", "Kennedy",
        "Hall", "Lee", "Walsh", "Patel", "Khan", "Garcia", "Rodriguez", "Nguyen", "Kim",
        "Hernandez", "Lopez", "Gonzalez", "Ellis", "Barnes", "Fisher", "Henderson", "Coleman",
        "Jenkins", "Perry", "Powell", "Butler", "Simmons", "Holmes", "Palmer", "Chapman",
    ),
    "de": (
        "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
        "Schulz", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf",
        "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann",
        "Lange", "Schmitt", "Werner", "Schmitz", "Krause", "Meier", "Lehmann", "Schmid",
        "Schulze", "Maier", "Köhler", "Herrmann", "König", "Walter", "Mayer", "Huber",
        "Kaiser", "Fuchs", "Peters", "Lang", "Scholz", "Möller", "Weiß", "Jung", "Hahn",
        "Schubert", "Vogel", "Friedrich", "Keller", "Günther", "Frank", "Berger", "Winkler",
        "Roth", "Beck", "Lorenz", "Baumann", "Franke", "Albrecht", "Schuster", "Simon",
        "Ludwig", "Böhm", "Winter", "Kraus", "Martin", "Schumacher", "Krämer", "Vogt",
        "Stein", "Jäger", "Otto", "Sommer", "Groß", "Seidel", "Heinrich", "Brandt", "Haas",
        "Schreiber", "Graf", "Dietrich", "Ziegler", "Kuhn", "Kühn", "Pohl", "Engel", "Horn",
        "Busch", "Bergmann", "Thomas", "Voigt", "Sauer", "Arnold", "Wolff", "Pfeiffer",
    ),
    "fr": (
        "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
        "Leroy", "Moreau", "Simon", "Laurent", "Lefebvre", "Michel", "Garcia", "David",
        "Bertrand", "Roux", "Vincent", "Fournier", "Morel", "Girard", "André", "Lefèvre",
        "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Martinez", "Legrand", "Garnier",
        "Faure", "Rousseau", "Blanc", "Guérin", "Muller", "Henry", "Roussel", "Nicolas",
        "Perrin", "Morin", "Mathieu", "Clément", "Gauthier", "Dumont", "Lopez", "Fontaine",
        "Chevalier", "Robin", "Masson", "Sanchez", "Gérard", "Nguyen", "Boyer", "Denis",
        "Lemaire", "Duval", "Joly", "Gautier", "Roger", "Roche", "Roy", "Noël", "Meyer",
        "Lucas", "Meunier", "Jean", "Perez", "Marchand", "Dufour", "Blanchard", "Marie",
        "Barbier", "Brun", "Dumas", "Brunet", "Schmitt", "Leroux", "Colin", "Fernandez",
        "Pierre", "Renard", "Arnaud", "Rolland", "Caron", "Aubert", "Giraud", "Leclerc",
        "Vidal", "Bourgeois", "Renaud", "Lemoine", "Picard", "Gaillard", "Philippe", "Leclercq",
    ),
    "nl": (
        "de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Janssen",
        "Visser", "Smit", "Meijer", "de Boer", "Mulder", "de Groot", "Bos", "Vos", "Peters",
        "Hendriks", "van Leeuwen", "Dekker", "Brouwer", "de Wit", "Dijkstra", "Smits",
        "de Graaf", "van der Meer", "van der Linden", "Kok", "Jacobs", "de Haan", "Vermeulen",
        "van den Heuvel", "van der Veen", "van den Broek", "de Bruijn", "de Bruin",
        "van der Heijden", "Schouten", "van Beek", "Willems", "van Vliet", "van de Ven",
        "Hoekstra", "Maas", "Verhoeven", "Koster", "van Dam", "van der Wal", "Prins",
        "Blom", "Huisman", "Peeters", "de Lange", "Kuipers", "van Wijk", "Post", "Kuiper",
        "Veenstra", "Kramer", "van den Brink", "Scholten", "van Wijngaarden", "Postma",
        "Martens", "Vink", "de Ruiter", "Timmermans", "Groen", "Gerritsen", "Jonker",
        "van Loon", "Boer", "van der Velde", "Willemsen", "Smeets", "de Lang", "de Vos",
        "van Rijn", "Evers", "Hermans", "van den Bosch", "Bosman", "Mertens", "Wouters",
    ),
}

# Given name -> the short forms people use for it (in sources that take what the person types).
NICKNAMES: dict[str, tuple[str, ...]] = {
    "Robert": ("Bob", "Rob", "Bobby"),
    "William": ("Bill", "Will", "Billy"),
    "James": ("Jim", "Jimmy", "Jamie"),
    "John": ("Jack", "Johnny"),
    "Richard": ("Rick", "Dick", "Rich"),
    "Michael": ("Mike", "Mick", "Micha"),
    "Thomas": ("Tom", "Tommy"),
    "Christopher": ("Chris", "Kit"),
    "Daniel": ("Dan", "Danny"),
    "Joseph": ("Joe", "Joey"),
    "Anthony": ("Tony",),
    "Matthew": ("Matt",),
    "Andrew": ("Andy", "Drew"),
    "Steven": ("Steve",),
    "Stephen": ("Steve",),
    "Kenneth": ("Ken", "Kenny"),
    "Edward": ("Ed", "Ted", "Eddie"),
    "Ronald": ("Ron", "Ronnie"),
    "Timothy": ("Tim",),
    "Jeffrey": ("Jeff",),
    "Nicholas": ("Nick",),
    "Jonathan": ("Jon",),
    "Benjamin": ("Ben",),
    "Samuel": ("Sam",),
    "Patrick": ("Pat", "Paddy"),
    "Alexander": ("Alex", "Sasha"),
    "Theodore": ("Theo", "Ted"),
    "Henry": ("Harry", "Hank"),
    "Charles": ("Charlie", "Chuck"),
    "Elizabeth": ("Liz", "Beth", "Betty", "Lisa"),
    "Margaret": ("Maggie", "Peggy", "Meg"),
    "Patricia": ("Pat", "Trish", "Patty"),
    "Jennifer": ("Jen", "Jenny"),
    "Susan": ("Sue", "Susie"),
    "Katherine": ("Kate", "Kathy", "Katie"),
    "Deborah": ("Debbie", "Deb"),
    "Rebecca": ("Becky", "Becca"),
    "Victoria": ("Vicky", "Tori"),
    "Samantha": ("Sam",),
    "Kimberly": ("Kim",),
    "Jessica": ("Jess",),
    "Stephanie": ("Steph",),
    "Abigail": ("Abby",),
    "Eleanor": ("Ellie", "Nell"),
    "Dorothy": ("Dot", "Dotty"),
    "Amanda": ("Mandy",),
    "Johannes": ("Hannes", "Jo", "Hans", "Jan"),
    "Wolfgang": ("Wolf",),
    "Friedrich": ("Fritz",),
    "Maximilian": ("Max",),
    "Matthias": ("Matze",),
    "Sebastian": ("Basti",),
    "Florian": ("Flo",),
    "Katharina": ("Kathi", "Kati"),
    "Stefanie": ("Steffi",),
    "Franziska": ("Franzi",),
    "Gabriele": ("Gabi",),
    "Christina": ("Tina",),
    "Susanne": ("Susi",),
    "Nicolas": ("Nico",),
    "Frédéric": ("Fred",),
    "Christophe": ("Chris",),
    "Alexandre": ("Alex",),
    "Catherine": ("Cathy",),
    "Guillaume": ("Guigui",),
    "Maxime": ("Max",),
    "Cornelis": ("Kees", "Cor"),
    "Hendrik": ("Henk", "Rik"),
    "Gerardus": ("Gerard", "Gert"),
    "Jacobus": ("Koos", "Jaap"),
    "Petrus": ("Piet",),
    "Wilhelmus": ("Wim",),
    "Adrianus": ("Arie", "Adrie"),
    "Abraham": ("Bram",),
    "Wilhelmina": ("Mien", "Willemijn"),
    "Johanna": ("Anneke", "Jo"),
    "Petronella": ("Nel",),
    "Hendrika": ("Riek",),
    "Geertruida": ("Truus",),
    "Cornelia": ("Corrie", "Nelleke"),
}

TAGS = (
    "newsletter", "vip", "early-adopter", "b2b", "returns", "mobile-app", "gift-cards",
    "outlet", "loyalty-app", "sms-opt-in", "wholesale", "student",
)

_US_KINDS = (
    ("Street", "St."), ("Avenue", "Ave."), ("Road", "Rd."), ("Boulevard", "Blvd."),
    ("Drive", "Dr."), ("Lane", "Ln."), ("Court", "Ct."), ("Place", "Pl."),
)
_GB_KINDS = (
    ("Street", "St"), ("Road", "Rd"), ("Lane", "Ln"), ("Avenue", "Ave"), ("Close", "Cl"),
    ("Gardens", "Gdns"), ("Crescent", "Cres"), ("Terrace", "Terr"),
)
_DE_KINDS = (("straße", "str."), ("weg", "weg"), ("allee", "allee"), ("ring", "ring"))
_FR_KINDS = (
    ("rue", "r."), ("avenue", "av."), ("boulevard", "bd"), ("place", "pl."), ("allée", "all."),
)
_NL_KINDS = (("straat", "str."), ("weg", "wg."), ("laan", "ln."), ("gracht", "gr."), ("plein", "pl."))

COUNTRIES: dict[str, Country] = {
    "US": Country(
        code="US",
        alpha3="USA",
        name="United States",
        language="en",
        providers=("gmail.com", "yahoo.com", "outlook.com", "icloud.com", "aol.com", "hotmail.com"),
        street_names=(
            "Maple", "Oak", "Pine", "Cedar", "Elm", "Washington", "Lincoln", "Park", "Lake",
            "Hill", "Main", "Church", "Sunset", "Highland", "Jefferson", "Madison", "Franklin",
            "Walnut", "Cherry", "Spring", "Willow", "Meadow", "River", "Forest", "Adams",
        ),
        street_kinds=_US_KINDS,
        cities=(
            City("New York", (10001, 10282), "212"),
            City("Chicago", (60601, 60661), "312"),
            City("Los Angeles", (90001, 90089), "213"),
            City("Boston", (2108, 2137), "617"),
            City("Seattle", (98101, 98199), "206"),
            City("Austin", (78701, 78759), "512"),
            City("Denver", (80202, 80249), "303"),
            City("Miami", (33125, 33199), "305"),
            City("San Francisco", (94102, 94134), "415"),
            City("Washington", (20001, 20037), "202"),
            City("Houston", (77002, 77099), "713"),
            City("Phoenix", (85003, 85054), "602"),
            City("Portland", (97201, 97236), "503"),
            City("Atlanta", (30303, 30363), "404"),
        ),
        mobile_prefixes=(),
        national_length=10,
    ),
    "GB": Country(
        code="GB",
        alpha3="GBR",
        name="United Kingdom",
        language="en",
        providers=(
            "gmail.com", "btinternet.com", "hotmail.co.uk", "yahoo.co.uk", "outlook.com",
            "sky.com",
        ),
        street_names=(
            "High", "Station", "Church", "Victoria", "Green", "Manor", "Park", "Queens",
            "Kings", "Mill", "School", "North", "Albert", "Windsor", "York", "Grange", "Chapel",
            "Springfield", "Orchard", "Kingsway", "Alexandra", "Cromwell", "Elm", "Beech",
        ),
        street_kinds=_GB_KINDS,
        cities=(
            City("London", ("SW1A", "SW3", "EC1A", "E2", "N1", "NW3", "SE1", "W1D", "WC2H"), "20"),
            City("Manchester", ("M1", "M4", "M14", "M20"), "161"),
            City("Birmingham", ("B1", "B5", "B15", "B29"), "121"),
            City("Leeds", ("LS1", "LS6", "LS11"), "113"),
            City("Glasgow", ("G1", "G3", "G12"), "141"),
            City("Edinburgh", ("EH1", "EH3", "EH9"), "131"),
            City("Bristol", ("BS1", "BS6", "BS8"), "117"),
            City("Liverpool", ("L1", "L8", "L17"), "151"),
        ),
        mobile_prefixes=("74", "75", "77", "78", "79"),
        national_length=10,
    ),
    "DE": Country(
        code="DE",
        alpha3="DEU",
        name="Germany",
        language="de",
        providers=("gmx.de", "web.de", "t-online.de", "gmail.com", "posteo.de", "outlook.de"),
        street_names=(
            "Haupt", "Bahnhof", "Goethe", "Schiller", "Linden", "Garten", "Kirch", "Schul",
            "Wald", "Post", "Mozart", "Beethoven", "Berliner", "Friedrich", "Rosen", "Birken",
            "Eichen", "Buchen", "Ahorn", "Mühlen", "Berg", "Blumen", "Sonnen", "Feld",
        ),
        street_kinds=_DE_KINDS,
        cities=(
            City("Berlin", (10115, 14199), "30"),
            City("Hamburg", (20095, 22769), "40"),
            City("München", (80331, 81929), "89", "Munich"),
            City("Köln", (50667, 51149), "221", "Cologne"),
            City("Frankfurt am Main", (60306, 60599), "69", "Frankfurt"),
            City("Stuttgart", (70173, 70629), "711"),
            City("Düsseldorf", (40210, 40629), "211"),
            City("Leipzig", (4103, 4357), "341"),
            City("Nürnberg", (90402, 90491), "911", "Nuremberg"),
        ),
        mobile_prefixes=("151", "152", "157", "160", "170", "171", "176"),
        national_length=10,
    ),
    "FR": Country(
        code="FR",
        alpha3="FRA",
        name="France",
        language="fr",
        providers=("orange.fr", "free.fr", "laposte.net", "gmail.com", "sfr.fr", "wanadoo.fr"),
        street_names=(
            "de la Paix", "Victor Hugo", "de la République", "Jean Jaurès", "du Général de Gaulle",
            "Pasteur", "des Lilas", "de la Gare", "Voltaire", "Saint-Michel", "des Écoles",
            "du Moulin", "de Verdun", "Gambetta", "Émile Zola", "de la Liberté", "des Roses",
            "du Château", "Foch", "Carnot",
        ),
        street_kinds=_FR_KINDS,
        cities=(
            City("Paris", (75001, 75020), "1"),
            City("Lyon", (69001, 69009), "4"),
            City("Marseille", (13001, 13016), "4"),
            City("Toulouse", (31000, 31500), "5"),
            City("Nice", (6000, 6300), "4"),
            City("Bordeaux", (33000, 33800), "5"),
            City("Lille", (59000, 59800), "3"),
            City("Nantes", (44000, 44300), "2"),
            City("Strasbourg", (67000, 67200), "3"),
        ),
        mobile_prefixes=("6", "7"),
        national_length=9,
    ),
    "NL": Country(
        code="NL",
        alpha3="NLD",
        name="Netherlands",
        language="nl",
        providers=("ziggo.nl", "kpnmail.nl", "gmail.com", "hotmail.nl", "xs4all.nl", "planet.nl"),
        street_names=(
            "Kerk", "Dorp", "School", "Molen", "Stations", "Heren", "Keizers", "Prinsen",
            "Juliana", "Beatrix", "Wilhelmina", "Oranje", "Linden", "Eiken", "Berken", "Rozen",
            "Tulpen", "Zuid", "Noord", "Oost", "West", "Haven", "Markt", "Sint Jans",
        ),
        street_kinds=_NL_KINDS,
        cities=(
            City("Amsterdam", (1011, 1109), "20"),
            City("Rotterdam", (3011, 3089), "10"),
            City("Den Haag", (2491, 2597), "70", "'s-Gravenhage"),
            City("Utrecht", (3511, 3585), "30"),
            City("Eindhoven", (5611, 5658), "40"),
            City("Groningen", (9711, 9747), "50"),
            City("Haarlem", (2011, 2037), "23"),
        ),
        mobile_prefixes=("6",),
        national_length=9,
    ),
}

# fmt: on

# How common each country is among generated people.
COUNTRY_WEIGHTS: dict[str, float] = {"US": 0.35, "GB": 0.2, "DE": 0.2, "FR": 0.13, "NL": 0.12}
