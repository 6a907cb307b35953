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

# ---- paths at install time ----------------------------------------------------------
# `cmake --install build --prefix /usr` changes the prefix after configuring, so the
# configuration directory and the paths the unit names are worked out when installing,
# from the prefix in force then (CMAKE_INSTALL_PREFIX in cmake_install.cmake), as
# GNUInstallDirs does at configure time: /etc for the prefixes / and /usr, /etc/opt/... for
# /opt/..., <prefix>/etc otherwise; an absolute CMAKE_INSTALL_SYSCONFDIR or
# CMAKE_INSTALL_SBINDIR is used as it is.
install(CODE "
  set(_ru_sysconfdir \"${CMAKE_INSTALL_SYSCONFDIR}\")
  if(NOT IS_ABSOLUTE \"\${_ru_sysconfdir}\")
    if(CMAKE_INSTALL_PREFIX MATCHES \"^/(usr/?)?$\")
      set(_ru_sysconfdir \"/\${_ru_sysconfdir}\")
    elseif(CMAKE_INSTALL_PREFIX MATCHES \"^/opt/\")
      set(_ru_sysconfdir \"/\${_ru_sysconfdir}\${CMAKE_INSTALL_PREFIX}\")
    else()
      set(_ru_sysconfdir \"\${CMAKE_INSTALL_PREFIX}/\${_ru_sysconfdir}\")
    endif()
  endif()
  set(_ru_confdir \"\${_ru_sysconfdir}/rollupd\")
  set(_ru_sbindir \"${CMAKE_INSTALL_SBINDIR}\")
  if(NOT IS_ABSOLUTE \"\${_ru_sbindir}\")
    set(_ru_sbindir \"\${CMAKE_INSTALL_PREFIX}/\${_ru_sbindir}\")
  endif()
" ALL_COMPONENTS)

# ---- configuration file -------------------------------------------------------------
# An existing file is left alone, so reinstalling never overwrites a local configuration.
# (file(INSTALL) adds DESTDIR itself; the existence test must add it by hand.)
install(CODE "
  if(EXISTS \"\$ENV{DESTDIR}\${_ru_confdir}/rollupd.conf\")
    message(STATUS \"Kept (exists): \$ENV{DESTDIR}\${_ru_confdir}/rollupd.conf\")
  else()
    file(INSTALL \"${_ru_top}/etc/rollupd.conf\" DESTINATION \"\${_ru_confdir}\"
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
" COMPONENT config)

# ---- systemd -------------------------------------------------------------------------
if(RU_INSTALL_SYSTEMD)
  # The unit in systemd/ names the paths of a /usr install (so that it can be verified
  # and read as it is); the installed copy names those of the prefix used at install time.
  if(IS_ABSOLUTE "${RU_SYSTEMD_UNITDIR}")
    set(_ru_unitdir "${RU_SYSTEMD_UNITDIR}")
  else()
    set(_ru_unitdir "\${CMAKE_INSTALL_PREFIX}/${RU_SYSTEMD_UNITDIR}")
  endif()
  # rollupd.service, and rollupd@.service: one instance per shard (README: Scaling out)
  foreach(_ru_unit_name rollupd.service rollupd@.service)
    set(_ru_unit_src "${_ru_top}/systemd/${_ru_unit_name}")
    install(CODE "
      file(READ \"${_ru_unit_src}\" _ru_unit)
      string(REPLACE \"/usr/sbin/rollupd\" \"\${_ru_sbindir}/rollupd\" _ru_unit \"\${_ru_unit}\")
      string(REPLACE \"/etc/rollupd/\" \"\${_ru_confdir}/\" _ru_unit \"\${_ru_unit}\")
      set(_ru_unit_out \"${CMAKE_CURRENT_BINARY_DIR}/systemd/${_ru_unit_name}\")
      file(WRITE \"\${_ru_unit_out}\" \"\${_ru_unit}\")
      file(INSTALL \"\${_ru_unit_out}\" DESTINATION \"${_ru_unitdir}\"
           FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
    " COMPONENT systemd)
  endforeach()
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
