using Containerd.Runtime.Bootstrap.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Sandbox.Fuzzing;
using Sandbox.Shim.Cli;
using Sandbox.Shim.Start;

namespace Sandbox.Shim.Tests.Fuzzing;

/// <summary>
/// Fuzzes what `start` and `delete` read before anything else: the command line containerd builds (flags in Go's
/// syntax, then the action) and `start`'s stdin (the runtime options as an Any, or containerd 2.x's BootstrapParams),
/// with hostile and mutated values. The flag parser must answer or refuse with a ShimUsageException that says what was
/// wrong; the stdin reader must never throw (it ignores what it cannot use and says so in its Source).
/// </summary>
public sealed class ShimCommandLineFuzzTests
{
    private static readonly string[] Flags =
        ["-namespace", "-id", "-address", "-publish-binary", "-bundle", "-socket", "-debug", "--debug", "-v", "-info", "-unknown", "-", "--", "-id=c1", "-debug=true", "-debug=maybe"];

    private static readonly string[] Actions = ["start", "delete", "", "Start", "stop"];

    [Fact]
    public async Task The_flag_parser_answers_or_says_what_is_wrong()
    {
        var run = new FuzzRun("shim command line", iterations: 5000, budget: TimeSpan.FromSeconds(20));
        int refused = 0;
        await run.RunAsync(fuzzCase =>
        {
            var random = fuzzCase.Random;
            var args = new List<string>();
            for (int i = random.Next(0, 8); i > 0; i--)
            {
                args.Add(Flags[random.Next(Flags.Length)]);
                if (random.Next(4) != 0)
                    args.Add(HostileValues.String(random));
            }
            if (random.Next(3) != 0)
                args.Add(Actions[random.Next(Actions.Length)]);
            fuzzCase.Input = string.Join(" ", args.Select(a => UntrustedQuote(a)));
            try
            {
                ShimFlagParser.Parse(args);
            }
            catch (ShimUsageException e)
            {
                Assert.False(string.IsNullOrWhiteSpace(e.Message));
                refused++;
            }
            return Task.CompletedTask;
        });
        Assert.True(refused > 0 && refused < run.Completed, $"{refused} of {run.Completed} command lines refused: the fuzzer is not exploring both sides");
    }

    [Fact]
    public async Task The_start_stdin_reader_never_throws()
    {
        var valid = new[]
        {
            new Any { TypeUrl = "runtimeoptions.v1.Options", Value = new RuntimeOptions.V1.Options { ConfigPath = "/etc/sandbox/configuration.toml" }.ToByteString() }.ToByteArray(),
            new BootstrapParams { Namespace = "k8s.io", ContainerdTtrpcAddress = "/run/containerd/containerd.sock.ttrpc" }.ToByteArray(),
        };
        var run = new FuzzRun("shim start stdin", iterations: 5000, budget: TimeSpan.FromSeconds(20));
        await run.RunAsync(fuzzCase =>
        {
            var random = fuzzCase.Random;
            byte[] stdin = random.Next(3) switch
            {
                0 => HostileValues.Bytes(random),
                1 => ProtobufFiller.Fill(random, new BootstrapParams()).ToByteArray(),
                _ => ByteMutator.Mutate(random, valid[random.Next(valid.Length)]),
            };
            fuzzCase.Input = Convert.ToHexString(stdin.AsSpan(0, Math.Min(stdin.Length, 256))) + $" ({stdin.Length} bytes)";
            var options = StartOptionsReader.Read(stdin);
            Assert.False(string.IsNullOrEmpty(options.Source));
            return Task.CompletedTask;
        });
    }

    private static string UntrustedQuote(string text) => Sandbox.Shim.Tasks.UntrustedText.Quote(text);
}
