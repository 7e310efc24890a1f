-- Live evaluation: a correction scores the prediction it started from against the doctor's final
-- mask, at no extra cost, so every model version gets a learning curve from the corrections made
-- with it (services/liveEvaluation.ts). NULL where the version has no parent prediction.
ALTER TABLE annotation_versions ADD COLUMN start_f1 real;
ALTER TABLE annotation_versions ADD COLUMN start_cldice real;
