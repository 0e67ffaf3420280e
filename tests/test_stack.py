"""The real stack starts: Spark with Spark NLP, TensorFlow (NerDL) and Delta on the project's jars."""

from __future__ import annotations

from pyspark.sql import Row


def test_delta_roundtrip(spark, tmp_path):
    path = str(tmp_path / "t")
    spark.createDataFrame([Row(a=1), Row(a=None)], "a int").write.format("delta").save(path)
    assert spark.read.format("delta").load(path).count() == 2


def test_nerdl_trains_and_infers_with_bundled_tensorflow(spark, tmp_path):
    """NerDLApproach runs on the substituted upstream TensorFlow Java 0.4.2 (see jvm/pom.xml)."""
    from pyspark.ml import Pipeline
    from sparknlp.annotator import NerConverter, NerDLApproach, SentenceDetector, Tokenizer, Word2VecApproach
    from sparknlp.base import DocumentAssembler
    from sparknlp.training import CoNLL

    rows = [("Juan Pérez vive en Madrid .", "B-PER I-PER O O B-LOC O"),
            ("Ana Gil trabaja en Soria .", "B-PER I-PER O O B-LOC O")] * 10
    conll = "-DOCSTART- -X- -X- O\n\n" + "\n\n".join(
        "\n".join(f"{w} NN NN {t}" for w, t in zip(s.split(), tags.split())) for s, tags in rows) + "\n"
    (tmp_path / "train.conll").write_text(conll)
    train = CoNLL().readDataset(spark, str(tmp_path / "train.conll"))
    doc = DocumentAssembler().setInputCol("text").setOutputCol("document")
    sent = SentenceDetector().setInputCols(["document"]).setOutputCol("sentence")
    tok = Tokenizer().setInputCols(["sentence"]).setOutputCol("token")
    w2v = (Word2VecApproach().setInputCols(["token"]).setOutputCol("embeddings")
           .setVectorSize(100).setMinCount(1).setMaxIter(1).setSeed(1))
    texts = spark.createDataFrame([(s,) for s, _ in rows], "text string")
    emb = Pipeline(stages=[doc, sent, tok, w2v]).fit(texts).stages[-1]
    ner = (NerDLApproach().setInputCols(["sentence", "token", "embeddings"]).setOutputCol("ner")
           .setLabelColumn("label").setMaxEpochs(3).setBatchSize(4).setRandomSeed(0).setVerbose(0)
           .fit(emb.transform(train)))
    conv = NerConverter().setInputCols(["sentence", "token", "ner"]).setOutputCol("chunk")
    model = Pipeline(stages=[doc, sent, tok, emb, ner, conv]).fit(texts)
    out = model.transform(spark.createDataFrame([("Juan Pérez vive en Madrid .",)], "text string"))
    tags = out.selectExpr("ner.result").first()[0]
    assert len(tags) == 6 and set(tags) <= {"B-PER", "I-PER", "B-LOC", "O"}
