using Sandbox.Hypervisors.Qemu;

namespace Sandbox.Hypervisors.Tests;

public class QemuCommandLineTests
{
    private static QemuLaunchSpec Spec(MachineType machine, Acceleration acceleration, VsockMode vsock, bool share) => new()
    {
        SandboxId = "pod1",
        Files = new QemuStateFiles("/run/sb/pod1"),
        KernelPath = "/img/vmlinux",
        InitrdPath = "/img/initramfs.cpio",
        KernelParameters = "console=ttyS0 quiet",
        Machine = machine,
        Acceleration = acceleration,
        Vcpus = 1,
        MemoryMiB = 256,
        VsockMode = vsock,
        GuestCid = vsock == VsockMode.Kernel ? 4711u : 3u,
        SharedDirectory = share ? "/run/sb/pod1/shared" : null,
        ShareMountTag = "share",
    };

    /// <summary>The value following <paramref name="option"/>, for options given once.</summary>
    private static string ValueOf(IReadOnlyList<string> args, string option)
    {
        var indexes = args.Select((a, i) => (a, i)).Where(x => x.a == option).Select(x => x.i).ToList();
        Assert.Single(indexes);
        return args[indexes[0] + 1];
    }

    private static List<string> ValuesOf(IReadOnlyList<string> args, string option) =>
        args.Select((a, i) => (a, i)).Where(x => x.a == option).Select(x => args[x.i + 1]).ToList();

    [Fact]
    public void Default_microvm_tcg_hybrid_with_share_exactly()
    {
        var args = QemuCommandLine.Build(Spec(MachineType.Microvm, Acceleration.Tcg, VsockMode.Hybrid, share: true));
        string[] expected =
        [
            "-name", "sandbox-pod1",
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
            "-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on,memory-backend=mem",
            "-accel", "tcg,tb-size=32", "-cpu", "max",
            "-smp", "1", "-m", "256M",
            "-object", "memory-backend-memfd,id=mem,size=256M,share=on",
            "-kernel", "/img/vmlinux", "-initrd", "/img/initramfs.cpio", "-append", "console=ttyS0 quiet",
            "-serial", "file:/run/sb/pod1/console.log",
            "-qmp", "unix:/run/sb/pod1/qmp.sock,server=on,wait=off",
            "-pidfile", "/run/sb/pod1/qemu.pid",
            "-chardev", "socket,id=vsock,path=/run/sb/pod1/vhost-vsock.sock",
            "-device", "vhost-user-vsock-device,chardev=vsock",
            "-fsdev", "local,id=fs0,path=/run/sb/pod1/shared,security_model=none,multidevs=remap",
            "-device", "virtio-9p-device,fsdev=fs0,mount_tag=share",
            "-device", "virtio-balloon-device,free-page-reporting=on",
        ];
        Assert.Equal(expected, args);
    }

    public static TheoryData<MachineType, Acceleration, VsockMode, bool> Matrix()
    {
        var data = new TheoryData<MachineType, Acceleration, VsockMode, bool>();
        foreach (var machine in new[] { MachineType.Microvm, MachineType.Q35 })
        foreach (var acceleration in new[] { Acceleration.Kvm, Acceleration.Tcg })
        foreach (var vsock in new[] { VsockMode.Kernel, VsockMode.Hybrid })
        foreach (var share in new[] { false, true })
            data.Add(machine, acceleration, vsock, share);
        return data;
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public void Every_combination(MachineType machine, Acceleration acceleration, VsockMode vsock, bool share)
    {
        var args = QemuCommandLine.Build(Spec(machine, acceleration, vsock, share));
        var microvm = machine == MachineType.Microvm;
        var hybrid = vsock == VsockMode.Hybrid;

        // Always there.
        foreach (var flag in new[] { "-nodefaults", "-no-user-config", "-nographic", "-no-reboot" })
            Assert.Contains(flag, args);
        Assert.Equal("on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny", ValueOf(args, "-sandbox"));
        Assert.Equal("file:/run/sb/pod1/console.log", ValueOf(args, "-serial"));
        Assert.Equal("unix:/run/sb/pod1/qmp.sock,server=on,wait=off", ValueOf(args, "-qmp"));
        Assert.Equal("/run/sb/pod1/qemu.pid", ValueOf(args, "-pidfile"));
        Assert.Equal("/img/vmlinux", ValueOf(args, "-kernel"));
        Assert.Equal("256M", ValueOf(args, "-m"));

        // Machine (+ the shared memory vhost-user needs).
        var machineValue = ValueOf(args, "-M");
        if (microvm)
            Assert.Equal(hybrid ? QemuCommandLine.MicrovmMachine + ",memory-backend=mem" : QemuCommandLine.MicrovmMachine, machineValue);
        else
            Assert.Equal("q35", machineValue);
        Assert.Equal(hybrid ? ["memory-backend-memfd,id=mem,size=256M,share=on"] : [], ValuesOf(args, "-object"));
        Assert.Equal(hybrid && !microvm ? ["node,memdev=mem"] : [], ValuesOf(args, "-numa"));

        // Acceleration.
        Assert.Equal(acceleration == Acceleration.Tcg ? "tcg,tb-size=32" : "kvm", ValueOf(args, "-accel"));
        Assert.Equal(acceleration == Acceleration.Tcg ? "max" : "host", ValueOf(args, "-cpu"));

        // Devices: vsock, then the optional 9p share.
        var devices = ValuesOf(args, "-device");
        var expectedDevices = new List<string>
        {
            (hybrid, microvm) switch
            {
                (false, true) => "vhost-vsock-device,guest-cid=4711",
                (false, false) => "vhost-vsock-pci,guest-cid=4711",
                (true, true) => "vhost-user-vsock-device,chardev=vsock",
                (true, false) => "vhost-user-vsock-pci,chardev=vsock",
            },
        };
        if (share)
            expectedDevices.Add($"{(microvm ? "virtio-9p-device" : "virtio-9p-pci")},fsdev=fs0,mount_tag=share");
        expectedDevices.Add($"{(microvm ? "virtio-balloon-device" : "virtio-balloon-pci")},free-page-reporting=on");
        Assert.Equal(expectedDevices, devices);
        Assert.Equal(hybrid ? ["socket,id=vsock,path=/run/sb/pod1/vhost-vsock.sock"] : [], ValuesOf(args, "-chardev"));
        Assert.Equal(share ? ["local,id=fs0,path=/run/sb/pod1/shared,security_model=none,multidevs=remap"] : [], ValuesOf(args, "-fsdev"));
    }

    [Fact]
    public void Commas_in_option_list_values_are_doubled_but_verbatim_values_are_not()
    {
        var spec = Spec(MachineType.Microvm, Acceleration.Tcg, VsockMode.Hybrid, share: true) with
        {
            Files = new QemuStateFiles("/run/a,b"),
            KernelPath = "/img,x/vmlinux",
            SharedDirectory = "/srv/x,y",
            ShareMountTag = "t,1",
        };
        var args = QemuCommandLine.Build(spec);
        Assert.Equal("/img,x/vmlinux", ValueOf(args, "-kernel"));
        Assert.Equal("file:/run/a,b/console.log", ValueOf(args, "-serial"));
        Assert.Equal("unix:/run/a,,b/qmp.sock,server=on,wait=off", ValueOf(args, "-qmp"));
        Assert.Equal("local,id=fs0,path=/srv/x,,y,security_model=none,multidevs=remap", ValueOf(args, "-fsdev"));
        Assert.Contains("virtio-9p-device,fsdev=fs0,mount_tag=t,,1", args);
    }

    [Fact]
    public void Translation_cache_size_and_sizes_are_taken_from_the_spec()
    {
        var args = QemuCommandLine.Build(Spec(MachineType.Microvm, Acceleration.Tcg, VsockMode.Kernel, false) with
        {
            TcgTranslationCacheMiB = 24, Vcpus = 2, MemoryMiB = 512,
        });
        Assert.Equal("tcg,tb-size=24", ValueOf(args, "-accel"));
        Assert.Equal("2", ValueOf(args, "-smp"));
        Assert.Equal("512M", ValueOf(args, "-m"));
    }

    [Fact]
    public void Unresolved_auto_values_are_refused()
    {
        Assert.Throws<ArgumentException>(() => QemuCommandLine.Build(Spec(MachineType.Microvm, Acceleration.Auto, VsockMode.Hybrid, false)));
        Assert.Throws<ArgumentException>(() => QemuCommandLine.Build(Spec(MachineType.Microvm, Acceleration.Tcg, VsockMode.Auto, false)));
    }

    [Fact]
    public void Daemon_command_line()
    {
        Assert.Equal(
            ["--guest-cid", "3", "--socket", "/run/sb/pod1/vhost-vsock.sock", "--uds-path", "/run/sb/pod1/vsock.sock"],
            VsockDaemonCommandLine.Build(new QemuStateFiles("/run/sb/pod1")));
    }

    [Fact]
    public void Command_line_text_is_shell_quoted_one_option_per_line()
    {
        var text = CommandLineText.Format("/usr/bin/qemu-system-x86_64",
            ["-nodefaults", "-append", "console=ttyS0 quiet", "-name", "it's"]);
        Assert.Equal(
            "/usr/bin/qemu-system-x86_64 \\\n  -nodefaults \\\n  -append 'console=ttyS0 quiet' \\\n  -name 'it'\\''s'\n", text);
    }

    [Theory]
    [InlineData("qemu-system-x86_64: -device vhost-vsock-device,guest-cid=5: vhost-vsock: unable to set guest cid: Address already in use", true)]
    [InlineData("qemu-system-x86_64: -device vhost-vsock-device,guest-cid=5: vhost-vsock: failed to open vhost device: No such file or directory", false)]
    public void Recognises_a_guest_cid_in_use(string output, bool inUse) => Assert.Equal(inUse, QemuAdapter.IsGuestCidInUse(output));
    [Fact]
    public void A_template_source_and_its_clone_have_the_same_devices_and_differ_only_in_memory_and_incoming()
    {
        var spec = Spec(MachineType.Microvm, Acceleration.Tcg, VsockMode.Hybrid, share: true);
        var source = QemuCommandLine.Build(spec with { Template = new VmTemplateRole.Source() });
        var clone = QemuCommandLine.Build(spec with { Template = new VmTemplateRole.CloneOf("/tpl/state", 7) });

        // guest RAM: the source's in a shared file of its state directory, the clone's mapped privately from the
        // descriptor it inherits
        Assert.Equal("memory-backend-file,id=mem,size=256M,mem-path=/run/sb/pod1/template-memory,share=on", ValueOf(source, "-object"));
        Assert.Equal("memory-backend-file,id=mem,size=256M,mem-path=/proc/self/fd/7,share=off", ValueOf(clone, "-object"));
        Assert.Equal("defer", ValueOf(clone, "-incoming"));
        Assert.DoesNotContain("-incoming", source);
        // the agent on a virtio-serial port; no vsock device (QEMU will not migrate vhost-user-vsock)
        foreach (var args in new[] { source, clone })
        {
            Assert.DoesNotContain(args, a => a.Contains("vsock", StringComparison.Ordinal));
            Assert.Equal(["virtio-serial-device,max_ports=3", "virtserialport,chardev=agent,name=sandbox.agent", "virtserialport,chardev=tools,name=sandbox.tools",
                "virtio-9p-device,fsdev=fs0,mount_tag=share",
                "virtio-balloon-device,free-page-reporting=on"], ValuesOf(args, "-device"));
            Assert.Equal(["socket,id=agent,path=/run/sb/pod1/agent.sock,server=on,wait=off", "socket,id=tools,path=/run/sb/pod1/tools.sock,server=on,wait=off"],
                ValuesOf(args, "-chardev"));
        }
        // everything else is the same, in the same order (device state is matched to devices by their place)
        static IEnumerable<string> WithoutMemoryAndIncoming(IReadOnlyList<string> args) =>
            args.Where((a, i) => a != "-object" && (i == 0 || args[i - 1] != "-object") && a != "-incoming" && (i == 0 || args[i - 1] != "-incoming"));
        Assert.Equal(WithoutMemoryAndIncoming(source), WithoutMemoryAndIncoming(clone));
    }
    [Fact]
    public void A_template_with_a_network_card_has_it_where_its_clone_has_the_pods_without_a_backend()
    {
        var spec = Spec(MachineType.Microvm, Acceleration.Tcg, VsockMode.Hybrid, share: true);
        var source = QemuCommandLine.Build(spec with { Template = new VmTemplateRole.Source(NetworkCards: 1) });
        var clone = QemuCommandLine.Build(spec with
        {
            Template = new VmTemplateRole.CloneOf("/tpl/state", 7),
            NetworkInterfaces = [new VmNetworkInterface("tap0", "02:42:0a:58:00:05")],
        });
        var sourceDevices = ValuesOf(source, "-device");
        var cloneDevices = ValuesOf(clone, "-device");
        Assert.Equal(sourceDevices.Count, cloneDevices.Count);
        int card = sourceDevices.IndexOf("virtio-net-device,mac=02:00:00:00:00:01");
        Assert.True(card >= 0, string.Join(' ', sourceDevices));
        Assert.Equal("virtio-net-device,netdev=net0,mac=02:42:0a:58:00:05", cloneDevices[card]);
        Assert.DoesNotContain("-netdev", source);
    }
}
