"""Drop resolved jars whose artifact pyspark already ships, then write jars/classpath.txt (a comma list)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pyspark

# artifact-version.jar -> artifact; versions start with a digit after the last '-' that precedes one.
_VERSION = re.compile(r"-(\d[\w.\-]*)$")


def artifact_of(jar: Path) -> str:
    """Artifact name of a jar file without its version (and without a classifier-less suffix)."""
    return _VERSION.sub("", jar.stem)


def main(folder: str) -> None:
    """Prune duplicates of pyspark's own jars and write the classpath file."""
    jars_dir = Path(folder).resolve()
    shipped = {artifact_of(j) for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    kept, dropped = [], []
    for jar in sorted(jars_dir.glob("*.jar")):
        # tensorflow-core-api-0.4.2-linux-x86_64.jar carries the native library: keep it (no clash possible).
        if artifact_of(jar) in shipped:
            jar.unlink()
            dropped.append(jar.name)
        else:
            kept.append(str(jar))
    (jars_dir / "classpath.txt").write_text(",".join(kept) + "\n")
    print(f"prune_jars: kept {len(kept)} jars, dropped {len(dropped)} already shipped by pyspark: {', '.join(dropped)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "jars")
