# install.cmake: install rules for everything but the binaries (CMakeLists.txt installs
# rollupd and rollupctl): the systemd unit, the sysusers.d entry, the configuration file
# and the manual pages. Included from the top-level CMakeLists.txt:
#
#   include(cmake/install.cmake)
#
# Cache variables (relative paths are relative to CMAKE_INSTALL_PREFIX, as for
# GNUInstallDirs; absolute ones are used as they are, e.g. the value of
# `pkg-config --variable=systemdsystemunitdir systemd`):
#   RU_INSTALL_SYSTEMD   install the unit and the sysusers.d entry (default ON)
#   RU_SYSTEMD_UNITDIR   where the unit goes (default lib/systemd/system)
#   RU_SYSUSERSDIR       where the sysusers.d entry goes (default lib/sysusers.d)

include(GNUInstallDirs)

get_filename_component(_ru_top "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

option(RU_INSTALL_SYSTEMD "Install the systemd unit and the sysusers.d entry" ON)
set(RU_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Directory for systemd system units (relative to CMAKE_INSTALL_PREFIX, or absolute)")
set(RU_SYSUSERSDIR "lib/sysusers.d" CACHE STRING
    "Directory for sysusers.d entries (relative to CMAKE_INSTALL_PREFIX, or absolute)")

# ---- configuration file -------------------------------------------------------------
# CMAKE_INSTALL_FULL_SYSCONFDIR: /etc when the prefix is /usr (CMAKE_INSTALL_SYSCONFDIR
# would give /usr/etc), <prefix>/etc otherwise. An existing file is left alone, so
# reinstalling never overwrites a local configuration.
set(_ru_confdir "${CMAKE_INSTALL_FULL_SYSCONFDIR}/rollupd")
# (file(INSTALL) adds DESTDIR itself; the existence test must add it by hand.)
install(CODE "
  if(EXISTS \"\$ENV{DESTDIR}${_ru_confdir}/rollupd.conf\")
    message(STATUS \"Kept (exists): \$ENV{DESTDIR}${_ru_confdir}/rollupd.conf\")
  else()
    file(INSTALL \"${_ru_top}/etc/rollupd.conf\" DESTINATION \"${_ru_confdir}\"
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
" COMPONENT config)

# ---- systemd -------------------------------------------------------------------------
if(RU_INSTALL_SYSTEMD)
  # The unit in systemd/ names the paths of a /usr install (so that it can be verified
  # and read as it is); for another prefix the installed copy names the real ones.
  set(_ru_unit_src "${_ru_top}/systemd/rollupd.service")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_ru_unit_src}")
  file(READ "${_ru_unit_src}" _ru_unit)
  string(REPLACE "/usr/sbin/rollupd" "${CMAKE_INSTALL_FULL_SBINDIR}/rollupd" _ru_unit
         "${_ru_unit}")
  string(REPLACE "/etc/rollupd/" "${_ru_confdir}/" _ru_unit "${_ru_unit}")
  set(_ru_unit_out "${CMAKE_CURRENT_BINARY_DIR}/systemd/rollupd.service")
  if(EXISTS "${_ru_unit_out}")
    file(READ "${_ru_unit_out}" _ru_unit_old)
  else()
    set(_ru_unit_old "")
  endif()
  if(NOT _ru_unit STREQUAL _ru_unit_old)
    file(WRITE "${_ru_unit_out}" "${_ru_unit}")
  endif()

  install(FILES "${_ru_unit_out}" DESTINATION "${RU_SYSTEMD_UNITDIR}" COMPONENT systemd)
  install(FILES "${_ru_top}/systemd/rollupd.sysusers" DESTINATION "${RU_SYSUSERSDIR}"
          RENAME rollupd.conf COMPONENT systemd)
endif()

# ---- manual pages ---------------------------------------------------------------------
install(FILES "${_ru_top}/man/rollupctl.1" DESTINATION "${CMAKE_INSTALL_MANDIR}/man1"
        COMPONENT man)
install(FILES "${_ru_top}/man/rollupd.conf.5" DESTINATION "${CMAKE_INSTALL_MANDIR}/man5"
        COMPONENT man)
install(FILES "${_ru_top}/man/rollupd.8" DESTINATION "${CMAKE_INSTALL_MANDIR}/man8"
        COMPONENT man)
