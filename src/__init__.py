"""MLflow pipeline template: make_data -> feat_data -> train_model -> predict."""
