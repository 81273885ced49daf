# From the MLflow docs, "Model Signatures and Input Examples"
# (https://mlflow.org/docs/latest/ml/model/signatures/), Apache-2.0: a column-based
# signature built by hand, one inferred, and get_model_info reading it back.
from sklearn import datasets
from sklearn.ensemble import RandomForestClassifier

import mlflow
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import ColSpec, Schema

iris = datasets.load_iris()
iris_train = iris.data[:, :4]
clf = RandomForestClassifier(n_estimators=5, max_depth=7, random_state=0)
clf.fit(iris_train, iris.target)

input_schema = Schema(
    [
        ColSpec("double", "sepal length (cm)"),
        ColSpec("double", "sepal width (cm)"),
        ColSpec("double", "petal length (cm)"),
        ColSpec("double", "petal width (cm)"),
    ]
)
output_schema = Schema([ColSpec("long")])
signature = ModelSignature(inputs=input_schema, outputs=output_schema)

with mlflow.start_run():
    info = mlflow.sklearn.log_model(clf, name="iris_rf", signature=signature)

model_info = mlflow.models.get_model_info(info.model_uri)
print(model_info.signature)
print(model_info.signature.inputs.input_names())
print(model_info.flavors.keys())

inferred = infer_signature(iris_train, clf.predict(iris_train))
print(inferred.to_dict())
