# `cmake --install build --prefix DIR`: a relocatable tree (README, "Deploying
# on a cluster"):
#   DIR/bin/                dtrain-coordinator, dtrain-worker, dtrain, dtrain-pack (+ gpu_probe,
#                           engine_bench when CUDA was built)
#   DIR/share/dtrain/jobs/  the job specs (quickstart, fmnist-resnet20, allreduce-bench)
#   DIR/share/dtrain/systemd/   units with ExecStart in DIR/bin, and dtrain.default
#   DIR/share/dtrain/{slurm,pbs,prometheus,grafana}/   launchers and dashboards
#   DIR/share/doc/dtrain/README.md
# The binaries keep the run paths of the libraries they were linked with
# outside the build tree (e.g. CUDA's lib64), nothing inside it.
include(GNUInstallDirs)
set(CMAKE_INSTALL_RPATH_USE_LINK_PATH ON)
set_target_properties(dtrain-coordinator dtrain-worker dtrain dtrain-pack PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
install(TARGETS dtrain-coordinator dtrain-worker dtrain dtrain-pack RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
foreach(t gpu_probe engine_bench)
  if(TARGET ${t})
    set_target_properties(${t} PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
    install(TARGETS ${t} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()
set(DTRAIN_SHARE ${CMAKE_INSTALL_DATADIR}/dtrain)
install(DIRECTORY deploy/jobs deploy/slurm deploy/pbs deploy/prometheus deploy/grafana DESTINATION ${DTRAIN_SHARE})
install(FILES deploy/systemd/dtrain.default DESTINATION ${DTRAIN_SHARE}/systemd)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
# The units name the binaries by absolute path: written with this install's bin.
foreach(unit dtrain-coordinator.service dtrain-worker@.service)
  install(CODE "
    file(READ \"${CMAKE_SOURCE_DIR}/deploy/systemd/${unit}\" text)
    string(REPLACE \"/usr/local/bin/\" \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/\" text \"\${text}\")
    file(MAKE_DIRECTORY \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${DTRAIN_SHARE}/systemd\")
    file(WRITE \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${DTRAIN_SHARE}/systemd/${unit}\" \"\${text}\")
    message(STATUS \"Installing: \$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${DTRAIN_SHARE}/systemd/${unit}\")
  ")
endforeach()
