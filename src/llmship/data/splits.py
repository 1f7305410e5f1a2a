"""Train / validation / test splits: the dataset's own when it has them, else seeded cuts."""

from __future__ import annotations

import random
from dataclasses import dataclass

from llmship.config.schema import DataConfig
from llmship.data.loading import Row
from llmship.errors import DataError

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Splits:
    train: list[Row]
    validation: list[Row]
    test: list[Row]

    def items(self) -> list[tuple[str, list[Row]]]:
        return [(name, getattr(self, name)) for name in SPLITS]


def make_splits(by_name: dict[str, list[Row]], data_cfg: DataConfig) -> Splits:
    """Map the source's splits by name; cut the missing ones from train with data.seed."""
    names = data_cfg.splits
    if names.train not in by_name:
        available = ", ".join(sorted(by_name)) or "none"
        raise DataError(
            f"the dataset has no split {names.train!r} (data.splits.train); it has: {available}"
        )
    rng = random.Random(data_cfg.seed)
    train = list(by_name[names.train])
    rng.shuffle(train)
    total = len(train)  # fractions are of the whole source, not of what is left
    cut = {}
    for split, fraction in (
        ("test", data_cfg.test_fraction),
        ("validation", data_cfg.validation_fraction),
    ):
        own = by_name.get(getattr(names, split))
        if own is not None:
            cut[split] = list(own)
            continue
        count = round(total * fraction)
        if fraction > 0 and count == 0 and total >= 3:
            count = 1
        cut[split], train = train[:count], train[count:]
    if not train:
        raise DataError(
            "no training rows left after cutting validation and test splits; add rows or lower "
            "data.validation_fraction / data.test_fraction"
        )
    limit = data_cfg.max_rows
    return Splits(
        train=train[:limit] if limit else train,
        validation=cut["validation"][:limit] if limit else cut["validation"],
        test=cut["test"][:limit] if limit else cut["test"],
    )
