################################################################################
#
# lvsbox
#
################################################################################

# One package for the three binaries: they are one Cargo workspace sharing
# the lbd library and every dependency, so one `cargo build` compiles each
# crate once (three packages would rsync the repository and build lbd three
# times). The version is the workspace's (a test checks they agree).
LVSBOX_VERSION = 0.1.0
LVSBOX_SITE = $(BR2_EXTERNAL_LVSBOX_PATH)/..
LVSBOX_SITE_METHOD = local
LVSBOX_LICENSE = MIT or Apache-2.0

# The developer's own build outputs must not be copied in (target/ can hold
# gigabytes, and host-built artefacts), nor a Buildroot output dir kept in
# the tree.
LVSBOX_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=/target --exclude=/buildroot/output --exclude=/.cargo

# Static, like image/ builds them (x86_64-unknown-linux-gnu with crt-static):
# the rootfs carries no libc and the same glibc code paths run as in the
# images the e2e tests boot. Only the target gets the flag, not build scripts.
LVSBOX_CARGO_ENV = \
	CARGO_TARGET_$(call UPPERCASE,$(RUSTC_TARGET_NAME))_RUSTFLAGS="-C target-feature=+crt-static"

LVSBOX_CARGO_BUILD_OPTS = --bin init --bin lbd --bin console

# Vendored crates. A `local` package has no download step, so Buildroot's
# cargo download post-process (which vendors into the package tarball in
# DL_DIR) never runs for it. vendor.sh does the same by hand: it vendors the
# workspace's locked crates once into $(DL_DIR)/lvsbox/vendor-<sha256 of
# Cargo.lock> (network needed only that once; on an air-gapped machine copy
# that directory in, see board/lvsbox/readme.txt) and prints its path; cargo
# then builds --offline from it through a source replacement.
LVSBOX_VENDOR_SH = $(BR2_EXTERNAL_LVSBOX_PATH)/board/lvsbox/vendor.sh

define LVSBOX_VENDOR_CRATES
	vendor_dir=$$(PATH=$(BR_PATH) CARGO_HOME=$(BR_CARGO_HOME) \
		$(LVSBOX_VENDOR_SH) $(DL_DIR) $(@D)) && \
	mkdir -p $(@D)/.cargo && \
	printf '[source.crates-io]\nreplace-with = "lvsbox-vendored"\n\n[source.lvsbox-vendored]\ndirectory = "%s"\n' \
		"$$vendor_dir" > $(@D)/.cargo/config.toml
endef
LVSBOX_PRE_BUILD_HOOKS += LVSBOX_VENDOR_CRATES

LVSBOX_BIN_DIR = $(@D)/target/$(RUSTC_TARGET_NAME)/$(if $(BR2_ENABLE_DEBUG),debug,release)

# Installed aside; board/lvsbox/post-build.sh places them where the appliance
# expects them (/init, /bin/lbd, /bin/console).
define LVSBOX_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(LVSBOX_BIN_DIR)/init $(TARGET_DIR)/usr/libexec/lvsbox/init
	$(INSTALL) -D -m 0755 $(LVSBOX_BIN_DIR)/lbd $(TARGET_DIR)/usr/libexec/lvsbox/lbd
	$(INSTALL) -D -m 0755 $(LVSBOX_BIN_DIR)/console $(TARGET_DIR)/usr/libexec/lvsbox/console
endef

$(eval $(cargo-package))
