# Every package of this tree: package/<name>/<name>.mk.
include $(sort $(wildcard $(BR2_EXTERNAL_LVSBOX_PATH)/package/*/*.mk))
