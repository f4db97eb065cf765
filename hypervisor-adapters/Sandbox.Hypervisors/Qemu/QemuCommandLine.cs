namespace Sandbox.Hypervisors.Qemu;

/// <summary>
/// Turns a <see cref="QemuLaunchSpec"/> into qemu-system-x86_64 arguments. Pure: no I/O, so every combination is
/// unit-tested. Values inside QEMU's comma-separated option lists have their commas doubled (QEMU's escape).
/// </summary>
public static class QemuCommandLine
{
    public const string MicrovmMachine = "microvm,x-option-roms=off,isa-serial=on,rtc=on";
    /// <summary>The -sandbox option: seccomp on, and every optional group denied.</summary>
    public const string SeccompSandbox = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";
    private const string MemoryBackendId = "mem";
    /// <summary>The agent's virtio-serial port name (the agent's VirtioSerialEndPoint.AgentPortName).</summary>
    public const string AgentSerialPortName = "sandbox.agent";
    /// <summary>The tools' virtio-serial port name (the agent's VirtioSerialEndPoint.ToolsPortName).</summary>
    public const string ToolsSerialPortName = "sandbox.tools";

    public static IReadOnlyList<string> Build(QemuLaunchSpec spec)
    {
        if (spec.Acceleration is not (Acceleration.Kvm or Acceleration.Tcg))
            throw new ArgumentException($"acceleration must be resolved to kvm or tcg, not {spec.Acceleration}", nameof(spec));
        if (spec.VsockMode is not (VsockMode.Kernel or VsockMode.Hybrid))
            throw new ArgumentException($"vsock mode must be resolved to kernel or hybrid, not {spec.VsockMode}", nameof(spec));

        var microvm = spec.Machine == MachineType.Microvm;
        // vhost-user needs guest RAM in shared memory the daemon can map.
        var sharedMemory = spec.VsockMode == VsockMode.Hybrid && spec.HasVsock;
        // A template source keeps guest RAM in a file (shared: the save then writes only the device state); a clone
        // maps the template's memory privately from the descriptor it inherited.
        string? memoryBackend = spec.Template switch
        {
            VmTemplateRole.Source => $"memory-backend-file,id={MemoryBackendId},size={spec.MemoryMiB}M,mem-path={Escape(spec.Files.TemplateMemory)},share=on",
            VmTemplateRole.CloneOf clone => $"memory-backend-file,id={MemoryBackendId},size={spec.MemoryMiB}M,mem-path=/proc/self/fd/{clone.MemoryDescriptor},share=off",
            _ when sharedMemory => $"memory-backend-memfd,id={MemoryBackendId},size={spec.MemoryMiB}M,share=on",
            _ => null,
        };
        var args = new List<string>
        {
            "-name", Escape($"sandbox-{spec.SandboxId}"),
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            // QEMU's seccomp filter (what Kata runs with): a guest that breaks device emulation cannot exec, fork a
            // helper, raise privileges (it also sets no_new_privs), change scheduling or use obsolete system calls.
            "-sandbox", SeccompSandbox,
        };

        var machine = microvm ? MicrovmMachine : "q35";
        if (memoryBackend is not null && microvm)
            machine += $",memory-backend={MemoryBackendId}";
        args.AddRange(["-M", machine]);

        if (spec.Acceleration == Acceleration.Tcg)
            // -cpu max offers RDRAND: without it the guest's first getrandom() waits ~1 s for entropy under TCG.
            args.AddRange(["-accel", $"tcg,tb-size={spec.TcgTranslationCacheMiB}", "-cpu", "max"]);
        else
            args.AddRange(["-accel", "kvm", "-cpu", "host"]);

        args.AddRange(["-smp", spec.Vcpus.ToString(), "-m", $"{spec.MemoryMiB}M"]);
        if (memoryBackend is not null)
        {
            args.AddRange(["-object", memoryBackend]);
            if (!microvm)
                args.AddRange(["-numa", $"node,memdev={MemoryBackendId}"]);
        }

        // -kernel, -initrd, -append, -pidfile and "-serial file:" take their value verbatim (no option parsing).
        args.AddRange(["-kernel", spec.KernelPath, "-initrd", spec.InitrdPath, "-append", spec.KernelParameters]);
        args.AddRange(["-serial", $"file:{spec.Files.ConsoleLog}"]);
        args.AddRange(["-qmp", $"unix:{Escape(spec.Files.QmpSocket)},server=on,wait=off"]);
        args.AddRange(["-pidfile", spec.Files.QemuPidFile]);

        if (!spec.HasVsock)
        {
            // The agent's channel in a template source or clone: one virtio-serial port, QEMU's chardev socket.
            // Two ports, each one client at a time: the shim's, and one for the operator's tools (sandboxctl).
            args.AddRange(["-device", microvm ? "virtio-serial-device,max_ports=3" : "virtio-serial-pci,max_ports=3"]);
            args.AddRange(["-chardev", $"socket,id=agent,path={Escape(spec.Files.AgentSerialSocket)},server=on,wait=off"]);
            args.AddRange(["-device", $"virtserialport,chardev=agent,name={AgentSerialPortName}"]);
            args.AddRange(["-chardev", $"socket,id=tools,path={Escape(spec.Files.ToolsSerialSocket)},server=on,wait=off"]);
            args.AddRange(["-device", $"virtserialport,chardev=tools,name={ToolsSerialPortName}"]);
        }
        else if (spec.VsockMode == VsockMode.Kernel)
        {
            args.AddRange(["-device", $"{(microvm ? "vhost-vsock-device" : "vhost-vsock-pci")},guest-cid={spec.GuestCid}"]);
        }
        else
        {
            args.AddRange(["-chardev", $"socket,id=vsock,path={Escape(spec.Files.VhostUserVsockSocket)}"]);
            args.AddRange(["-device", $"{(microvm ? "vhost-user-vsock-device" : "vhost-user-vsock-pci")},chardev=vsock"]);
        }

        if (spec.SharedDirectory is not null)
        {
            args.AddRange(["-fsdev", $"local,id=fs0,path={Escape(spec.SharedDirectory)},security_model=none,multidevs=remap"]);
            args.AddRange(["-device", $"{(microvm ? "virtio-9p-device" : "virtio-9p-pci")},fsdev=fs0,mount_tag={Escape(spec.ShareMountTag)}"]);
        }

        if (spec.Template is VmTemplateRole.Source { NetworkCards: > 0 } source)
        {
            // A template's cards have no backend (QEMU warns that they have no peer); each clone's has its tap. Same
            // devices in the same places as a clone's cards below.
            for (var i = 0; i < source.NetworkCards; i++)
                args.AddRange(["-device", $"virtio-net-device,mac={VmTemplateRole.PlaceholderMac(i)}"]);
        }
        for (var i = 0; i < spec.NetworkInterfaces.Count; i++)
        {
            var nic = spec.NetworkInterfaces[i];
            // The tap exists and is wired up already (for a pod: tc redirects between it and the pod's veth), so QEMU
            // runs no ifup/ifdown scripts; it only opens the device. q35 boots the kernel directly: no option ROM.
            args.AddRange(["-netdev", spec.FirstTapDescriptor is { } first
                ? $"tap,id=net{i},fd={first + i}"
                : $"tap,id=net{i},ifname={Escape(nic.TapName)},script=no,downscript=no"]);
            args.AddRange(["-device", microvm
                ? $"virtio-net-device,netdev=net{i},mac={nic.MacAddress}"
                : $"virtio-net-pci,netdev=net{i},mac={nic.MacAddress},romfile="]);
        }

        // Free page reporting: the guest (module virtio_balloon, loaded by the image's init) tells QEMU which of its
        // pages are free, and QEMU discards them, so memory the guest touched once and freed (the initrd copy after
        // unpacking, freed init sections) goes back to the host. The balloon itself is never inflated.
        args.AddRange(["-device", $"{(microvm ? "virtio-balloon-device" : "virtio-balloon-pci")},free-page-reporting=on"]);
        if (spec.Template is VmTemplateRole.CloneOf)
            // the device state comes through QMP's migrate-incoming, once x-ignore-shared is set (QEMU 7.2 takes
            // migration capabilities only through QMP)
            args.AddRange(["-incoming", "defer"]);
        return args;
    }

    /// <summary>QEMU's escape for a comma inside an option value: two commas.</summary>
    public static string Escape(string value) => value.Replace(",", ",,");
}
