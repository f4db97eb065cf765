using Containerd.Runtime.Bootstrap.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Sandbox.Shim.Start;

namespace Sandbox.Shim.Tests;

public class StartOptionsReaderTests
{
    [Fact]
    public void Empty_stdin_means_no_options()
    {
        Assert.Equal(StartOptions.None, StartOptionsReader.Read(ReadOnlySpan<byte>.Empty));
    }

    [Fact]
    public void Reads_the_config_path_from_the_runtimeoptions_Any_containerd_1_6_sends()
    {
        // the 53 bytes observed on `start` stdin (spec section 1.3)
        var bytes = Convert.FromHexString("0a19" + Hex("runtimeoptions.v1.Options") + "1218" + "1216" + Hex("/etc/probe/config.toml"));
        Assert.Equal(53, bytes.Length);

        var options = StartOptionsReader.Read(bytes);

        Assert.Equal("/etc/probe/config.toml", options.ConfigPath);
        Assert.Equal("options runtimeoptions.v1.Options", options.Source);
    }

    [Fact]
    public void Accepts_a_prefixed_type_url_and_other_option_types()
    {
        var prefixed = new Any
        {
            TypeUrl = "type.googleapis.com/runtimeoptions.v1.Options",
            Value = new RuntimeOptions.V1.Options { ConfigPath = "/etc/x.toml" }.ToByteString(),
        };
        Assert.Equal("/etc/x.toml", StartOptionsReader.Read(prefixed.ToByteArray()).ConfigPath);

        var runc = new Any { TypeUrl = "containerd.runc.v1.Options", Value = ByteString.CopyFrom(0x08, 0x01) };
        var options = StartOptionsReader.Read(runc.ToByteArray());
        Assert.Null(options.ConfigPath);
        Assert.Equal("options containerd.runc.v1.Options", options.Source);
    }

    [Fact]
    public void Reads_bootstrap_params_of_containerd_2_3()
    {
        var bootstrap = new BootstrapParams
        {
            InstanceId = "my.container.1", // a dot, as in a type URL: must still be read as bootstrap params
            Namespace = "k8s.io",
            LogLevel = 4,
            ContainerdVersion = "2.3.0",
            ContainerdTtrpcAddress = "/run/containerd/containerd.sock.ttrpc",
            ContainerdGrpcAddress = "/run/containerd/containerd.sock",
            ContainerdBinary = "/usr/bin/containerd",
            SocketDir = "/run/containerd/s",
        };
        bootstrap.Extensions.Add(new global::Containerd.Runtime.Bootstrap.V1.Extension
        {
            Value = new Any { TypeUrl = "runtimeoptions.v1.Options", Value = new RuntimeOptions.V1.Options { ConfigPath = "/etc/sandbox.toml" }.ToByteString() },
        });

        var options = StartOptionsReader.Read(bootstrap.ToByteArray());

        Assert.Equal("bootstrap params", options.Source);
        Assert.Equal("/etc/sandbox.toml", options.ConfigPath);
        Assert.Equal("/run/containerd/containerd.sock.ttrpc", options.TtrpcAddress);
        Assert.Equal("k8s.io", options.Namespace);
    }

    [Theory]
    [InlineData("ff")]
    [InlineData("0a")]
    [InlineData("0affffffff")]
    [InlineData("68656c6c6f20776f726c640a")]
    public void Garbage_never_fails(string hex)
    {
        var options = StartOptionsReader.Read(Convert.FromHexString(hex));
        Assert.Null(options.ConfigPath);
        Assert.StartsWith("unrecognised", options.Source);
    }

    private static string Hex(string text) => Convert.ToHexString(System.Text.Encoding.ASCII.GetBytes(text));
}
