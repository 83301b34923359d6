# unit tests for worker/trainer (multi-rank cases fork real UCX processes)
dtrain_unit_test(trainer_test SOURCES trainer_test.cc LIBS dtrain_trainer dtrain_comm)
# checkpoints: bit-identical resume, pruning, refusal of mismatched or damaged ones, elastic position
dtrain_unit_test(trainer_checkpoint_test SOURCES trainer_checkpoint_test.cc LIBS dtrain_trainer dtrain_comm)
dtrain_unit_test(trainer_bn_average_test SOURCES trainer_bn_average_test.cc LIBS dtrain_trainer dtrain_comm)
# TensorBoard event files: TFRecord framing and CRCs read back by an own reader, training's series
dtrain_unit_test(trainer_tensorboard_test SOURCES trainer_tensorboard_test.cc LIBS dtrain_trainer dtrain_comm dtrain_tb_proto)
