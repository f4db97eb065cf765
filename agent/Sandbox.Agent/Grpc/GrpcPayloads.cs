using System.Buffers;
using Grpc.Core;

namespace Sandbox.Agent.Grpc;

/// <summary>Runs a marshaller (generated ones are contextual) on whole-message byte arrays.</summary>
public static class GrpcPayloads
{
    public static T Deserialize<T>(Marshaller<T> marshaller, byte[] payload) =>
        marshaller.ContextualDeserializer(new PayloadDeserializationContext(payload));

    public static byte[] Serialize<T>(Marshaller<T> marshaller, T message)
    {
        var context = new PayloadSerializationContext();
        marshaller.ContextualSerializer(message, context);
        return context.Result ?? throw new InvalidOperationException("the marshaller did not complete the message");
    }

    private sealed class PayloadDeserializationContext(byte[] payload) : DeserializationContext
    {
        public override int PayloadLength => payload.Length;
        public override byte[] PayloadAsNewBuffer() => payload;
        public override ReadOnlySequence<byte> PayloadAsReadOnlySequence() => new(payload);
    }

    private sealed class PayloadSerializationContext : SerializationContext
    {
        private readonly ArrayBufferWriter<byte> _writer = new();

        public byte[]? Result { get; private set; }

        public override void Complete(byte[] payload) => Result = payload;
        public override IBufferWriter<byte> GetBufferWriter() => _writer;
        public override void SetPayloadLength(int payloadLength) { }
        public override void Complete() => Result = _writer.WrittenSpan.ToArray();
    }
}
