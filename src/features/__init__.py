"""feat_data: select the model's columns, encode the label and split train/test."""
