using Containerd.Runtime.Bootstrap.V1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using RuntimeOptions.V1;

namespace Sandbox.Shim.Start;

/// <summary>What containerd wrote to `start` stdin, as far as the shim cares.</summary>
public sealed record StartOptions(string Source, string? ConfigPath, string? TtrpcAddress, string? Namespace)
{
    public static readonly StartOptions None = new("none", null, null, null);
}

/// <summary>
/// Decodes `start` stdin, which may be: nothing (no options); a google.protobuf.Any with the runtime options
/// (containerd ≤ 2.2; CRI sends runtimeoptions.v1.Options{config_path}); or a BootstrapParams (containerd 2.3+,
/// the options Any inside an extension). Both shapes have length-delimited fields 1 and 2, so an Any is recognised
/// by a type URL in field 1. Never fails: anything unrecognised is reported in <see cref="StartOptions.Source"/>.
/// </summary>
public static class StartOptionsReader
{
    public const string RuntimeOptionsTypeUrl = "runtimeoptions.v1.Options";

    public static StartOptions Read(ReadOnlySpan<byte> stdin)
    {
        if (stdin.IsEmpty)
            return StartOptions.None;

        var bytes = stdin.ToArray();
        if (TryParse(Any.Parser, bytes, out var any) && IsPlausibleAny(any, bytes.Length))
            return new StartOptions($"options {any.TypeUrl}", ConfigPathOf(any), null, null);

        if (TryParse(BootstrapParams.Parser, bytes, out var bootstrap))
        {
            string? configPath = bootstrap.Extensions
                .Select(e => e.Value)
                .Where(v => v is not null)
                .Select(ConfigPathOf)
                .FirstOrDefault(p => p is not null);
            return new StartOptions("bootstrap params", configPath,
                bootstrap.ContainerdTtrpcAddress.Length > 0 ? bootstrap.ContainerdTtrpcAddress : null,
                bootstrap.Namespace.Length > 0 ? bootstrap.Namespace : null);
        }

        return new StartOptions($"unrecognised ({bytes.Length} bytes)", null, null, null);
    }

    private static string? ConfigPathOf(Any any)
    {
        if (!IsRuntimeOptions(any.TypeUrl))
            return null;
        return TryParse(Options.Parser, any.Value.ToByteArray(), out var options) && options.ConfigPath.Length > 0
            ? options.ConfigPath
            : null;
    }

    private static bool IsRuntimeOptions(string typeUrl) =>
        typeUrl == RuntimeOptionsTypeUrl || typeUrl.EndsWith("/" + RuntimeOptionsTypeUrl, StringComparison.Ordinal);

    /// <summary>An Any has only fields 1 and 2, a type URL in 1, and a well-formed message in 2.</summary>
    private static bool IsPlausibleAny(Any any, int encodedLength) =>
        LooksLikeTypeUrl(any.TypeUrl)
        && new Any { TypeUrl = any.TypeUrl, Value = any.Value }.CalculateSize() == encodedLength // no fields beyond 1 and 2
        && TryParse<Empty>(Empty.Parser, any.Value.ToByteArray(), out _);

    private static bool LooksLikeTypeUrl(string value) =>
        value.Length > 0 && (value.Contains('.') || value.Contains('/')) && !value.Any(char.IsWhiteSpace) && !value.Any(char.IsControl);

    private static bool TryParse<T>(MessageParser<T> parser, byte[] bytes, out T message)
        where T : IMessage<T>
    {
        try
        {
            message = parser.ParseFrom(bytes);
            return true;
        }
        catch (InvalidProtocolBufferException)
        {
            message = default!;
            return false;
        }
    }
}
